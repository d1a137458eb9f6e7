"""``nexnet demo``: train, evaluate and predict end to end on SYNTHETIC data, in a few minutes on a CPU."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from ..errors import NexnetError
from ..evaluation import evaluate
from ..inference import predict
from ..io import atomic_write_text
from ..outputs import SPLIT, refuse_foreign_files
from ..profile import count_parameters
from ..synthetic import make_synthetic_dataset
from ..training import RunConfig, resolve, train

DEMO_FILES = {"synthetic_polyps", "run", "eval", "test_images", "predictions", "report.md"}
DEMO_SETTINGS = [
    "train.batch_size=16", "train.lr=1e-3", "train.warmup_epochs=2", "train.early_stop=15",
    "train.epochs=60", "train.eval_batch_size=32",
]  # fmt: skip


def run_demo(out: str | Path = "demo", seconds: float = 120) -> int:
    """Generate synthetic data, train ``nexnet_seg_s`` for about ``seconds``, evaluate, predict, report."""
    start = time.time()
    out = Path(out)
    if not seconds > 0:
        raise NexnetError(f"--seconds {seconds:g}: give a training budget above 0 (default 120)")
    refuse_foreign_files(out, "--out", DEMO_FILES)  # it replaces its own folders below, and only those
    data = out / "synthetic_polyps"
    if not (data / "README.txt").is_file():
        print(f"generating 240 SYNTHETIC polyp-like images in {data} ...")
        make_synthetic_dataset(data, n=240, seed=0)
    run = out / "run"
    shutil.rmtree(run, ignore_errors=True)  # a demo starts fresh each time
    cfg = resolve(None, DEMO_SETTINGS, model__name="nexnet_seg_s", data__dataset="folder",
                  data__data_root=str(data), data__split="seeded", data__image_size=64,
                  train__max_minutes=seconds / 60, train__device="cpu")  # fmt: skip
    torch.manual_seed(0)
    result = train(cfg, run)
    print("\nevaluating the best checkpoint on the synthetic test split:")
    summary = evaluate(run / "best", "folder", data, subset="test", protocol="paper", out=out / "eval",
                       device="cpu")  # fmt: skip
    split = json.loads((run / SPLIT).read_text())
    inputs = out / "test_images"
    for folder in (inputs, out / "predictions"):
        shutil.rmtree(folder, ignore_errors=True)
    inputs.mkdir(parents=True)
    for cid in split["test"]:
        shutil.copy(data / "images" / f"{cid}.png", inputs / f"{cid}.png")
    predict(run / "best", inputs, out / "predictions", overlays=True, gt=data / "masks", device="cpu")
    _report(out, cfg, result, summary, time.time() - start)
    print(f"\nreport: {out / 'report.md'}")
    if warning := undertrained(result, seconds):
        print(warning)
    print(f"try it in a browser: nexnet serve --checkpoint {out / 'run' / 'best'}  (needs the serve extra)")
    return 0


def undertrained(result: dict, seconds: float) -> str:
    """A warning when the time budget bought too little training to show anything (a busy machine),
    naming the fix; '' otherwise. On an idle 2-core machine the demo reaches about 0.9."""
    if result["best_score"] >= 0.5:
        return ""
    return (
        f"warning: the model trained only {result['epoch']} epochs in {result['elapsed']:.0f} s and reached a "
        f"validation mDice of {result['best_score']:.2f}: the machine was busy or slow; run nexnet demo "
        f"--seconds {int(seconds * 3)} for a model worth looking at"
    )


def _report(out: Path, cfg: RunConfig, result: dict, s: dict, wall: float) -> None:
    m, pooled, ci = s["mean"], s["pixel_pooled"], s["mean_dice_ci95"]
    from ..models import create_model

    params = count_parameters(create_model("nexnet_seg_s")) / 1e6
    text = f"""# nexnet demo report (SYNTHETIC data)

**Everything here is synthetic**: {s["cases"]} generated polyp-like test images, not medical data.
The numbers show that the pipeline works end to end; they say nothing about clinical performance.

Model `nexnet_seg_s` ({params:.2f}M parameters), trained {result["epoch"]} epochs
({result["optimizer_steps"]} optimizer steps, {result["elapsed"]:.0f} s, stopped: {result["stop_reason"]})
at {cfg.data.image_size} px on the CPU; demo settings: {", ".join(DEMO_SETTINGS)}.
Best validation mDice {result["best_score"]:.4f} at epoch {result["best_epoch"]}. Whole demo: {wall:.0f} s.
{undertrained(result, cfg.train.max_minutes * 60)}

## Test metrics (honest protocol: threshold 0.5, each image at its original size)

| metric | value |
|---|---|
| mean Dice | {m["dice"]:.4f} (95% CI {ci[0]:.4f}-{ci[1]:.4f}) |
| mean IoU | {m["iou"]:.4f} |
| mean precision / recall | {m["precision"]:.4f} / {m["recall"]:.4f} |
| mean HD95 (px) | {m["hd95"] if m["hd95"] is None else f"{m['hd95']:.2f}"} |
| pixel-pooled Dice / IoU | {pooled["dice"]:.4f} / {pooled["iou"]:.4f} |
| authors' protocol Dice (batch-pooled, threshold picked on the test labels) | {s["authors_protocol"]["dice"]:.4f} |

Per-case metrics: `eval/summary.json`.

## Training curves

![curves](run/curves.png)

## Predictions on the synthetic test images

Green: prediction; blue: ground truth. All overlays: `predictions/overlays/`; masks: `predictions/`.

![overlays](predictions/overlays.png)

## Reproduce

```
nexnet demo --out {out} --seconds {cfg.train.max_minutes * 60:.0f}
```

## Try the model in a browser

```
nexnet serve --checkpoint {out / "run" / "best"}      # then open http://127.0.0.1:8000/
```
"""
    atomic_write_text(out / "report.md", text)
