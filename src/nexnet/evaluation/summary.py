"""nnU-Net-style summaries: per-case metrics, means, pixel-pooled scores, a bootstrap CI, a table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_json
from ..outputs import SUMMARY
from . import metrics as M


def summarise(cases: list[dict[str, Any]], extra: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """nnU-Net-style summary: per case, mean, pixel-pooled Dice/IoU and a bootstrap CI of mDice."""
    dice = [c["dice"] for c in cases]
    lo, hi = M.bootstrap_ci(dice, seed=seed)
    undefined = sum(1 for c in cases if c["hd95"] is None)
    return {
        **extra,
        "cases": len(cases),
        "mean": M.mean_metrics(cases),
        "mean_dice_ci95": [lo, hi],
        "pixel_pooled": M.pooled(c.pop("_counts") for c in cases),
        "hd95_undefined_cases": undefined,
        "metric_notes": "per-case metrics at each image's original size; mean over cases (HD95 over the "
        "cases where it is defined); pixel_pooled sums pixels over all cases; CI: percentile bootstrap "
        "of mDice, 2000 resamples",
        "per_case": cases,
    }


def report(summary: dict[str, Any], out: str | Path | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Print the table (and any ``subset_note``), then write ``OUT/summary.json`` when ``out`` is set."""
    say(format_summary(summary))
    if "subset_note" in summary:
        say(f"note: {summary['subset_note']}")
    if out:
        atomic_write_json(Path(out) / SUMMARY, summary)
        say(f"wrote {Path(out) / SUMMARY} (per-case metrics)")
    return summary


def score_case(case_id: str, pred: np.ndarray, gt: np.ndarray, **extra: Any) -> dict[str, Any]:
    m = M.case_metrics(pred, gt)
    return {"id": case_id, **m, **extra, "_counts": M.confusion(pred, gt)}


def format_summary(s: dict[str, Any]) -> str:
    mean, pooled = s["mean"], s["pixel_pooled"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"{'metric':<22}{'value':>10}", "-" * 32]
    for k in M.METRICS:
        label = f"mean {k}" + (" (px)" if k == "hd95" else "")
        lines.append(f"{label:<22}{fmt(mean[k]):>10}")
    lines.append(f"{'mDice 95% CI':<22}{s['mean_dice_ci95'][0]:.4f}-{s['mean_dice_ci95'][1]:.4f}")
    lines.append(f"{'pixel-pooled Dice':<22}{pooled['dice']:>10.4f}")
    lines.append(f"{'pixel-pooled IoU':<22}{pooled['iou']:>10.4f}")
    if "authors_protocol" in s:
        a = s["authors_protocol"]
        lines.append(f"{'authors protocol Dice':<22}{a['dice']:>10.4f}  ({a['label']})")
    lines.append(f"{s['cases']} cases; threshold {s.get('threshold', {}).get('value', '-')} "
                 f"({s.get('threshold', {}).get('chosen_on', '-')}); HD95 undefined (an empty "
                 f"mask) for {s['hd95_undefined_cases']} of them")  # fmt: skip
    return "\n".join(lines)
