"""``nexnet frontier``: each model family's test mDice against training minutes, widths chosen on validation."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import csv_list


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    f = sub.add_parser(
        "frontier", help="accuracy against training time for whole model families (resumable grid)",
        description="Train every (model, width, image size, budget, seed) as its own run with --max-minutes set to "
        "the budget (cosine schedule over it, one-epoch warm-up), evaluate each on the test split, choose each "
        "family's width and size per budget on VALIDATION mDice (mean over seeds), and compare families on the "
        "same test images with a paired bootstrap. "
        "Writes frontier.json, frontier.md and frontier.png; points/ keeps each finished run, so a rerun skips it.",
    )  # fmt: skip
    f.add_argument("--dataset", required=True, help="adapter name: see 'nexnet datasets'")
    f.add_argument("--data-root", required=True, help="the dataset folder as downloaded, or a folder holding it")
    f.add_argument("--split", default=None, help="the dataset's split (default: its usual one, kvasir: pranet)")
    f.add_argument("--split-seed", type=int, default=0, help="seed of the carved validation part (one for all runs)")
    f.add_argument("--models", type=csv_list, default=["nexnet_seg", "unet"],
                   help="model families, comma-separated; the first is compared with each other one")  # fmt: skip
    f.add_argument("--widths", type=csv_list, default=["1/8", "1/4", "1/2"],
                   help="factors of each model's standard widths (nexnet_seg 32-...-512, unet base 64)")  # fmt: skip
    f.add_argument("--budgets", type=csv_list, default=["10", "30"], help="training minutes per run")
    f.add_argument("--seeds", type=int, default=2, help="training seeds per point (0, 1, ...)")
    f.add_argument("--image-size", type=csv_list, default=["128"],
                   help="square side in px; several, comma-separated (64,128), are chosen between on validation "
                        "like the widths")  # fmt: skip
    f.add_argument("--batch-size", type=int, default=16)
    f.add_argument("--jobs", type=int, default=1,
                   help="runs at a time (give each --threads so they share evenly); a lone run gets a skipped "
                        "seed beside it")  # fmt: skip
    f.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's)")
    f.add_argument("--skip-below", type=float, default=0.03,
                   help="a width whose first seed validates this far below its family's best skips its other "
                        "seeds (recorded); negative: never skip")  # fmt: skip
    f.add_argument("--extend-best", type=float, default=None,
                   help="minutes: also train each family's width chosen at the largest budget this long")  # fmt: skip
    f.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override for every run")
    f.add_argument("--out", default="runs/frontier", help="folder for runs/, points/ and the report")
    f.add_argument("--report-only", action="store_true",
                   help="train nothing: report the finished runs and list those still to train")  # fmt: skip
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    return f


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data import get_adapter
    from ..data.discovery import source_folders
    from ..outputs import refuse_inside_sources
    from ..recipes.frontier import FrontierPlan, parse_width, run_frontier

    budgets = list(dict.fromkeys(_positive(b, "--budgets") for b in args.budgets))
    sizes = list(dict.fromkeys(_whole(v, "--image-size") for v in args.image_size))
    for flag, value in (("--seeds", args.seeds), ("--jobs", args.jobs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise NexnetError(f"{flag} {value}: give a positive number")
    if args.threads is not None and args.threads < 1:
        raise NexnetError(f"--threads {args.threads}: give a positive number of threads, e.g. --threads 1")
    refuse_inside_sources(args.out, "--out", source_folders("--data-root", args.data_root, besides=[args.out]))
    get_adapter(args.dataset).locate(Path(args.data_root))  # a missing dataset before any run starts
    plan = FrontierPlan(
        dataset=args.dataset, data_root=str(Path(args.data_root).resolve()), out=Path(args.out),
        models=list(dict.fromkeys(args.models)), widths=list(dict.fromkeys(parse_width(w) for w in args.widths)),
        budgets=budgets, seeds=args.seeds, image_sizes=sizes, batch_size=args.batch_size, split=args.split,
        split_seed=args.split_seed,
        jobs=args.jobs, threads=args.threads, skip_below=args.skip_below if args.skip_below >= 0 else None,
        extend_best=args.extend_best, device=args.device, sets=args.set, report_only=args.report_only,
    )  # fmt: skip
    run_frontier(plan)
    from ..outputs import FRONTIER_RECORD

    print(f"wrote {plan.out / FRONTIER_RECORD}, frontier.md and frontier.png")
    return 0


def _positive(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise NexnetError(f"{flag} {text!r}: give minutes as positive numbers, e.g. --budgets 10,30")
    return value


def _whole(text: str, flag: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise NexnetError(f"{flag} {text!r}: give sizes in px as whole numbers, e.g. {flag} 128 or 64,128")
    return int(text)
