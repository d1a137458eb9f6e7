"""NExNet Seg and UNet side by side on Kvasir-SEG: the same recipe and wall-time budget, honest test.

Both models train at once on one GPU (two processes) with the default recipe (configs/default.yaml)
and bf16 autocast, each for the same budget: ``--minutes`` of training (the cosine schedule runs
over the time; the faster network gets more epochs) or ``--epochs`` (the same steps for both; the
cosine runs over the epochs). Then each best-on-validation checkpoint is evaluated once on the test
split with the honest protocol (threshold 0.5, metrics at original size). Prints one table and
writes it to ``OUT/table.md``.

    python benchmarks/gpu_kvasir.py --data-root KVASIR_DIR --out OUT [--minutes 5 | --epochs 60]

``benchmarks/gpu_kvasir.sh`` runs it from the repository root without installing. On a CPU it runs
too (``--device cpu``, small ``--image-size``, another ``--dataset``): tests/test_benchmarks.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_logged(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` with its output in ``log``."""
    handle = open(log, "w")  # noqa: SIM115 - closed with the process by the caller's wait
    return subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_all(procs: dict[str, subprocess.Popen], logs: dict[str, Path], what: str) -> None:
    for name, proc in procs.items():
        if proc.wait() != 0:
            tail = logs[name].read_text().strip().splitlines()[-5:]
            sys.exit(f"{what} {name} failed (exit {proc.returncode}); last lines of {logs[name]}:\n" + "\n".join(tail))


def log_summary(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "log.csv")))
    best = max(rows, key=lambda r: float(r["val_dice"]))
    return {"epochs": len(rows), "steps": int(rows[-1]["optimizer_steps"]), "best_val": float(best["val_dice"]),
            "best_epoch": int(best["epoch"]), "train_seconds": sum(float(r["seconds"]) for r in rows),
            "final_train_loss": float(rows[-1]["train_loss"])}  # fmt: skip


def budget_flags(args: argparse.Namespace) -> list[str]:
    """Early stopping off in both modes: each model spends its whole budget."""
    if args.epochs:
        return ["--epochs", str(args.epochs), "--set", f"train.early_stop={args.epochs}"]
    return ["--epochs", "100000", "--max-minutes", str(args.minutes), "--set", "train.early_stop=100000"]


def table(results: dict[str, dict], args: argparse.Namespace) -> str:
    budget = f"{args.epochs} epochs" if args.epochs else f"{args.minutes} min of training"
    lines = [
        f"{args.dataset} `{args.split}` split, {args.image_size} px, {budget} each "
        f"(both at once on one {args.device_name}), bf16={not args.no_amp}, default recipe, seed {args.seed}; "
        f"test: honest protocol, threshold 0.5, original size, {args.test_cases} images.",
        "",
        "| model | epochs | steps | final train loss | best val mDice (epoch) | test mDice (95% CI) "
        "| test mIoU | training wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lo, hi = r["ci"]
        lines.append(f"| `{name}` | {r['epochs']} | {r['steps']} | {r['final_train_loss']:.3f} | "
                     f"{r['best_val']:.3f} ({r['best_epoch']}) | **{r['test_dice']:.3f}** ({lo:.3f}-{hi:.3f}) | "
                     f"{r['test_iou']:.3f} | {r['train_seconds'] / 60:.1f} min |")  # fmt: skip
    tuned = {name: r["tuned"] for name, r in results.items() if "tuned" in r}
    if tuned:
        lines += ["", "The same checkpoints with the threshold chosen on the validation split and flip TTA (still "
                  "honest: no test label chooses anything):", "",
                  "| model | threshold (chosen on val) | test mDice (95% CI) |", "|---|---|---|"]  # fmt: skip
        lines += [f"| `{name}` | {t['threshold']:.2f} | **{t['test_dice']:.3f}** ({t['ci'][0]:.3f}-{t['ci'][1]:.3f}) |"
                  for name, t in tuned.items()]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="the Kvasir-SEG folder (images/, masks/)")
    p.add_argument("--dataset", default="kvasir", help="adapter name (default kvasir)")
    p.add_argument("--split", default="pranet", help="split (default pranet)")
    p.add_argument("--out", required=True, help="folder for the runs, logs and table.md")
    p.add_argument("--models", default="nexnet_seg,unet")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=5.0, help="training wall time per model (default 5)")
    budget.add_argument("--epochs", type=int, default=None, help="instead: the same number of epochs for both")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--no-amp", action="store_true", help="float32 instead of bf16 autocast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="extra --set for both trainings")
    p.add_argument(
        "--also-tuned",
        action="store_true",
        help="also evaluate each model with the threshold chosen on validation and flip TTA (honest)",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NEXNET_CACHE_DIR", str(out / "cache"))
    os.environ["PYTHONUNBUFFERED"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    import torch

    args.device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_kvasir: no CUDA device; pass --device cpu to run on the CPU")
    sys.path.insert(0, str(ROOT / "src"))
    from nexnet.data.prepare import prepare_data

    t0 = time.time()
    data_cfg = {"dataset": args.dataset, "data_root": args.data_root, "split": args.split, "seed": 0,  # split seed
                "image_size": args.image_size, "workers": os.cpu_count()}  # fmt: skip
    args.test_cases = len(prepare_data(data_cfg).split.test)  # decode once, before the runs share the cache
    print(f"data ready in {time.time() - t0:.0f}s", flush=True)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    py = [sys.executable, "-m", "nexnet"]
    common = ["--dataset", args.dataset, "--data-root", args.data_root, "--split", args.split,
              "--image-size", str(args.image_size), "--device", args.device, "--seed", str(args.seed),
              *budget_flags(args), "--quiet",
              *sum((["--set", s] for s in args.set), [])]  # fmt: skip
    amp = [] if args.no_amp else ["--amp"]
    logs = {m: out / f"{m}.train.txt" for m in models}
    procs = {m: run_logged([*py, "train", "--model", m, "--out", str(out / m), *common, *amp], logs[m]) for m in models}
    wait_all(procs, logs, "training")
    print(f"training done at {time.time() - t0:.0f}s", flush=True)

    evaluations = {"eval": []} | ({"eval_tuned": ["--threshold", "val", "--tta"]} if args.also_tuned else {})
    for folder, extra in evaluations.items():
        logs = {m: out / f"{m}.{folder}.txt" for m in models}
        procs = {m: run_logged([*py, "evaluate", "--checkpoint", str(out / m / "best"), "--dataset", args.dataset,
                                "--data-root", args.data_root, "--device", args.device, *amp, *extra,
                                "--out", str(out / m / folder)], logs[m])  # fmt: skip
                 for m in models}  # fmt: skip
        wait_all(procs, logs, "evaluation")
    results = {}
    for m in models:
        s = json.loads((out / m / "eval" / "summary.json").read_text())
        results[m] = {**log_summary(out / m), "test_dice": s["mean"]["dice"], "test_iou": s["mean"]["iou"],
                      "ci": s["mean_dice_ci95"]}  # fmt: skip
        if args.also_tuned:
            t = json.loads((out / m / "eval_tuned" / "summary.json").read_text())
            results[m]["tuned"] = {"test_dice": t["mean"]["dice"], "ci": t["mean_dice_ci95"],
                                   "threshold": t["threshold"]["value"]}  # fmt: skip
    text = table(results, args) + f"\nTotal wall time {time.time() - t0:.0f}s.\n"
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
