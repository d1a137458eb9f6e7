"""``nexnet reproduce``: the paper's tables as a resumable grid."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import csv_list


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    r = sub.add_parser(
        "reproduce", help="run the paper's Table 1, 2 or 4 as a resumable grid",
        description="Table 1: datasets x models; Table 2: the ablation variants (first dataset found); "
        "Table 4: the profile. Finished runs are skipped, interrupted ones resume. --quick: 64 px, 8 epochs, "
        "batch 16, lr 1e-3, NExNet Seg and UNet on Kvasir, over either recipe (see docs/reproduce.md).",
    )  # fmt: skip
    r.add_argument("--table", required=True, choices=["1", "2", "4"])
    r.add_argument("--data-root", default=None, help="a folder holding the datasets under their usual names")
    r.add_argument("--datasets", type=csv_list, default=None, help="comma-separated (default: all six; quick: kvasir)")
    r.add_argument("--models", type=csv_list, default=None, help="comma-separated registry names")
    r.add_argument("--quick", action="store_true", help="a reduced grid that runs on 2 CPU cores")
    r.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    r.add_argument("--out", default="results")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key in every run")
    r.add_argument("--paper-exact", action="store_true",
                   help="the paper's recipe (configs/paper_recipe.yaml) for every model and NExNet Seg's "
                        "paper form, in tableN_paper_exact/")  # fmt: skip
    return r


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.discovery import source_folders
    from ..outputs import refuse_inside_sources
    from ..recipes import reproduce as R

    out = Path(args.out)
    device = args.device or "auto"
    if args.table == "4":
        models = args.models or (["nexnet_seg", "unet"] if args.quick else [*R.MODELS, "nexnet_seg_ssl"])
        R.table4(out, models, args.quick, "cpu" if device == "auto" else device, print)
    else:
        if not args.data_root:
            raise NexnetError(f"--table {args.table} needs --data-root")
        refuse_inside_sources(out, "--out", source_folders("--data-root", args.data_root, besides=[out]))
        default_sets = ["kvasir"] if args.quick else R.DATASETS
        datasets = args.datasets or default_sets
        if args.table == "1":
            models = args.models or (["nexnet_seg", "unet"] if args.quick else list(R.MODELS))
            R.table1(Path(args.data_root), out, datasets, models, args.quick, device, print, args.set,
                     args.paper_exact)  # fmt: skip
        else:
            R.table2(Path(args.data_root), out, datasets, args.quick, device, print, args.set, args.paper_exact)
    name = R.table_name(int(args.table), args.paper_exact and args.table != "4")
    print(f"wrote {out}/{name}.md and .csv")
    return 0
