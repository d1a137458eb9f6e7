"""Summarise benchmarks/training_study.sh: a markdown table of every arm and a figure of the curves.

    python benchmarks/study_table.py runs/study [--figure docs/figures/training_study.png]
    python benchmarks/study_table.py --compare NAME=RUN/log.csv ... --figure FIG.png   (any runs' curves)

Validation numbers only: the study never reads the test split.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

FIGURE_ARMS = {
    "A_paper_model_paper_recipe": "paper form+recipe",
    "B_unet16_paper_recipe": "UNet-16, paper recipe",
    "D_paper_model_no_tpen": "paper form, no T-PEN",
    "F_linear_init_coef_lr10": "paper + linear init",
    "M_revised_default": "revised",
    "Q_masa_from3_lr2e-3": "lean, 2e-3",
    "W_undilated": "lean, undilated",
    "Y_undilated_residual": "residual (default)",
    "I_unet16_lr2e-3": "UNet-16, lr 2e-3",
}


def read_log(run: Path) -> list[dict[str, float]]:
    """A run folder's ``log.csv`` (or a log file given directly), as floats."""
    with open(run if run.suffix == ".csv" else run / "log.csv") as f:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()} for r in csv.DictReader(f)]


def summarise(run: Path) -> dict[str, float]:
    rows = read_log(run)
    best = max(rows, key=lambda r: r["val_dice"])
    last3 = [r["val_dice"] for r in rows[-3:]]
    return {"epochs": len(rows), "steps": int(rows[-1]["optimizer_steps"]), "train_loss": rows[-1]["train_loss"],
            "best_val": best["val_dice"], "best_epoch": int(best["epoch"]), "last3_val": statistics.mean(last3),
            "minutes": sum(r["seconds"] for r in rows) / 60}  # fmt: skip


def table(study: Path) -> str:
    lines = ["| arm | epochs | steps | final train loss | best val mDice (epoch) | mean val mDice, last 3 epochs "
             "| wall time |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for run in sorted(p for p in study.iterdir() if (p / "done").is_file()):
        s = summarise(run)
        best = f"{s['best_val']:.3f} ({s['best_epoch']})"
        lines.append(f"| {run.name} | {s['epochs']} | {s['steps']} | {s['train_loss']:.3f} | {best} | "
                     f"{s['last3_val']:.3f} | {s['minutes']:.1f} min |")  # fmt: skip
    return "\n".join(lines)


def figure(logs: dict[str, list[dict[str, float]]], path: Path, x_label: str = "epoch") -> None:
    """Training loss and validation mDice per epoch, one line per run (shorter runs end early)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from nexnet.plots import line_chart

    epochs = max(len(rows) for rows in logs.values())
    x = list(range(1, epochs + 1))

    def curves(key: str) -> dict[str, list[float]]:
        return {label: [r[key] for r in rows] + [float("nan")] * (epochs - len(rows)) for label, rows in logs.items()}

    line_chart(path, x, [("training loss", curves("train_loss")), ("validation mDice", curves("val_dice"))],
               x_label=x_label, panel_size=(640, 380))  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path, nargs="?", help="the study's output folder")
    p.add_argument("--compare", nargs="+", metavar="NAME=LOG", help="plot these log.csv files instead")
    p.add_argument("--figure", type=Path, default=None)
    args = p.parse_args()
    if args.compare:
        logs = {k: read_log(Path(v)) for k, v in (item.split("=", 1) for item in args.compare)}
    else:
        print(table(args.study))
        logs = {label: read_log(args.study / arm) for arm, label in FIGURE_ARMS.items()
                if (args.study / arm / "done").is_file()}  # fmt: skip
    if args.figure:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        figure(logs, args.figure, "epoch" if args.compare else "epoch (50 steps of batch 16 at 64 px)")
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
