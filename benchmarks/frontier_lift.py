"""Candidates that might lift NExNet Seg's frontier (issue 26, part 3), decided on validation only.

    python benchmarks/frontier_lift.py --data-root ../shared/datasets/kvasir_seg \
        --base docs/evidence/frontier-kvasir-cpu --out docs/evidence/frontier-lift-cpu \
        [--candidates batch8,ema,lr4e-3] [--budget 10] [--width 1/4] [--size 64] [--seeds 2]

``--base rerun`` trains the unchanged recipe beside the candidates instead (candidate ``base``): a
budget is wall time, so on another machine, or the same one on another day, only a base run under
the same conditions is a fair baseline.

Each candidate is one ``nexnet frontier`` sitting of its own (its own ``--out``: a changed recipe is
another protocol) at the base frontier's chosen setting: the same model, width, image size, budget,
seeds, split and machine sharing (two runs at a time, one thread each: the candidates run in pairs,
side by side, so give an even number). Every run's best checkpoint
is then scored on its validation cases (``evaluate --subset val``: selection data) and the candidate
is compared with the base runs image by image, each image's Dice averaged over seeds, with a paired
bootstrap CI. A candidate is kept only if its validation CI lies above zero. The test difference
is printed beside it for the record; it decides nothing. Finished runs and evaluations are skipped,
so a killed study resumes. Writes ``OUT/lift.md`` and ``OUT/lift.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CANDIDATES = {  # name -> the frontier flags that make it
    "base": ["--batch-size", "16"],  # the recipe unchanged: the base rerun beside the candidates
    "batch8": ["--batch-size", "8"],
    "ema": ["--batch-size", "16", "--set", "train.ema_decay=0.999"],
    "lr4e-3": ["--batch-size", "16", "--set", "train.lr=4e-3"],
    "noaug": ["--batch-size", "16", "--set", "augment.enabled=false"],
    "batch32": ["--batch-size", "32"],  # (frontier runs already warm up for one epoch, not five)
    # the form's settings: RMT's per-head decays, no dropout, a cheaper T-PEN, MaSA from level 4 only
    "rmt": ["--batch-size", "16", "--set", "model.gamma=rmt"],
    "dropout0": ["--batch-size", "16", "--set", "model.dropout=0"],
    "order2": ["--batch-size", "16", "--set", "model.order=2"],
    "masa4": ["--batch-size", "16", "--set", "model.masa_from=4"],
    "noclip": ["--batch-size", "16", "--set", "train.grad_clip=null"],
}


def frontiers(args: argparse.Namespace, sittings: dict[Path, list[str]]) -> None:
    """The candidates' frontier sittings at the base setting, two at a time: one sitting trains its
    seeds one after another, so two sittings side by side keep two runs on the machine, each on one
    thread, as the base frontier ran (finished points are skipped)."""
    pending = list(sittings.items())
    while pending:
        pair, pending = pending[:2], pending[2:]
        running = [subprocess.Popen(_frontier_command(args, out, flags)) for out, flags in pair]
        if any([proc.wait() for proc in running]):
            raise SystemExit("a frontier sitting failed; see its logs/ folder")


def _frontier_command(args: argparse.Namespace, out: Path, flags: list[str]) -> list[str]:
    command = [sys.executable, "-m", "nexnet", "frontier", "--dataset", args.dataset, "--data-root", args.data_root,
               "--split", args.split, "--models", "nexnet_seg", "--widths", args.width, "--image-size", str(args.size),
               "--budgets", f"{args.budget:g}", "--seeds", str(args.seeds), "--jobs", "2", "--threads", "1",
               "--out", str(out), "--quiet", *flags]  # fmt: skip
    print(" ".join(command[2:]), flush=True)
    return command


def validation_dice(args: argparse.Namespace, runs: Path, names: list[str]) -> list[dict[str, float]]:
    """Per-image validation Dice of each run's best/ (``evaluate --subset val``, once per run)."""
    found = []
    for name in names:
        folder = runs / name / "eval_val"
        if not (folder / "summary.json").is_file():
            subprocess.run([sys.executable, "-m", "nexnet", "evaluate", "--checkpoint", str(runs / name / "best"),
                            "--dataset", args.dataset, "--data-root", args.data_root, "--subset", "val",
                            "--threads", "2", "--out", str(folder)], check=True, capture_output=True)  # fmt: skip
        summary = json.loads((folder / "summary.json").read_text())
        found.append({c["id"]: c["dice"] for c in summary["per_case"]})
    return found


def seed_mean(per_run: list[dict[str, float]]) -> dict[str, float]:
    ids = sorted(set.intersection(*(set(r) for r in per_run)))
    return {i: sum(r[i] for r in per_run) / len(per_run) for i in ids}


def compare(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    from nexnet.evaluation.metrics import paired_difference

    ids = sorted(set(a) & set(b))
    return {**paired_difference([a[i] for i in ids], [b[i] for i in ids]), "images": len(ids)}


def point_names(args: argparse.Namespace) -> list[str]:
    width = args.width.replace("/", "_")
    return [f"nexnet_seg-w{width}-{args.size}px-{args.budget:g}min-seed{s}" for s in range(args.seeds)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--dataset", default="kvasir")
    p.add_argument("--split", default="pranet")
    p.add_argument(
        "--base",
        required=True,
        help="the frontier folder whose runs are the baseline, or 'rerun': train "
        "the unchanged recipe as candidate 'base' beside the others (the fair choice on another machine)",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--candidates", default="batch8,ema,lr4e-3", help=f"comma-separated, of {', '.join(CANDIDATES)}")
    p.add_argument("--budget", type=float, default=10.0)
    p.add_argument("--width", default="1/4")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seeds", type=int, default=2)
    args = p.parse_args()
    names, names_wanted = point_names(args), args.candidates.split(",")
    if unknown := [n for n in names_wanted if n not in CANDIDATES]:
        raise SystemExit(f"--candidates: unknown {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    rerun = args.base == "rerun"
    if rerun:
        names_wanted = ["base", *(n for n in names_wanted if n != "base")]
    if len(names_wanted) % 2:
        raise SystemExit("--candidates: give an even number of sittings (the base counts when rerun), so that two "
                         "runs share the machine as in the base")  # fmt: skip
    frontiers(args, {Path(args.out) / name: CANDIDATES[name] for name in names_wanted})
    base = Path(args.out) / "base" if rerun else Path(args.base)
    names_wanted = [n for n in names_wanted if not (rerun and n == "base")]
    base_val = seed_mean(validation_dice(args, base / "runs", names))
    base_points = [json.loads((base / "points" / f"{n}.json").read_text()) for n in names]
    base_test = seed_mean([pt["test_dice"] for pt in base_points])
    rows = {}
    for name in names_wanted:
        out = Path(args.out) / name
        val = seed_mean(validation_dice(args, out / "runs", names))
        points = [json.loads((out / "points" / f"{n}.json").read_text()) for n in names]
        test = seed_mean([pt["test_dice"] for pt in points])
        rows[name] = {"flags": CANDIDATES[name], "val": compare(val, base_val), "test": compare(test, base_test),
                      "epochs": sum(pt["epochs"] for pt in points) / len(points), "kept": False,
                      "val_dice_seed_mean": val, "base_val_dice_seed_mean": base_val}  # fmt: skip
        rows[name]["kept"] = rows[name]["val"]["ci95"][0] > 0
        Path(args.out, "lift.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"NExNet Seg {args.width} at {args.size} px, {args.budget:g} min, {args.seeds} seeds, against the base "
             f"runs in {base}; candidate minus base, per image averaged over seeds, paired 95% CI.", "",
             "| candidate | flags | epochs | validation (decides) | test (reported only) | kept |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in rows.items():
        v, t = r["val"], r["test"]
        lines.append(f"| {name} | `{' '.join(r['flags'])}` | {r['epochs']:.1f} | {v['mean']:+.4f} "
                     f"[{v['ci95'][0]:+.3f}, "
                     f"{v['ci95'][1]:+.3f}] | {t['mean']:+.4f} [{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}] | "
                     f"{'yes' if r['kept'] else 'no'} |")  # fmt: skip
    base_epochs = sum(pt["epochs"] for pt in base_points) / len(base_points)
    lines += ["", f"Base epochs: {base_epochs:.1f} (mean over seeds)."]
    Path(args.out, "lift.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
