"""Segmentation metrics for binary masks, with the project's empty-mask rules.

Per case: Dice, IoU, precision, recall, specificity, accuracy, HD95 (pixels). Both masks empty:
Dice = IoU = 1; exactly one empty: Dice = IoU = 0; HD95 is undefined (None) whenever either mask
is empty. Precision with no predicted foreground and recall with no true foreground follow the
same rule: 1 when both masks are empty, else 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from scipy import ndimage

# The thresholds a choice on validation (evaluate --threshold val) and the authors' protocol search.
THRESHOLD_GRID = tuple(round(float(t), 2) for t in np.arange(0.05, 0.96, 0.05))
METRICS = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "hd95")
BOTH_EMPTY = 1.0  # the score when neither mask has foreground: nothing to find, nothing found


def confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int, int]:
    """``(tp, fp, fn, tn)`` of two boolean masks of one shape."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    pred, gt = pred.astype(bool), gt.astype(bool)
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gt)) - tp
    return tp, fp, fn, pred.size - tp - fp - fn


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return BOTH_EMPTY if both_empty else 0.0
    return num / den


# What validation during training scores (batch_metrics' keys, logged as val_NAME); train.select
# picks the one that chooses best/ and stops early (higher is better). A short label for each.
VALIDATION_METRICS = {"dice": "mDice", "iou": "mIoU"}


def batch_metrics(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-case scores of ``(B, ...)`` binary tensors, one ``(B,)`` tensor per name of
    :data:`VALIDATION_METRICS`, on their device, with ``case_metrics``'s empty-mask rule."""
    dice, iou = batch_dice_iou(pred, gt)
    return {"dice": dice, "iou": iou}


def batch_dice_iou(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-case Dice and IoU of ``(B, ...)`` binary tensors, on their device, with ``case_metrics``'s
    empty-mask rule (validation during training uses it at network resolution)."""
    pred, gt = pred.flatten(1).float(), gt.flatten(1).float()
    inter, total = (pred * gt).sum(1), pred.sum(1) + gt.sum(1)
    empty = total == 0
    dice = torch.where(empty, BOTH_EMPTY, 2 * inter / total.clamp(min=1))
    iou = torch.where(empty, BOTH_EMPTY, inter / (total - inter).clamp(min=1))
    return dice, iou


def boundary(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-connected background neighbour (the image border counts as background)."""
    mask = mask.astype(bool)
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, gt: np.ndarray) -> float | None:
    """Symmetric 95th-percentile Hausdorff distance between mask boundaries, in pixels.

    The larger of the two directed 95th percentiles (linear interpolation), as MONAI's
    ``HausdorffDistanceMetric(percentile=95)``. ``None`` when either mask is empty.
    """
    pred, gt = pred.astype(bool), gt.astype(bool)
    if not pred.any() or not gt.any():
        return None
    edge_p, edge_g = boundary(pred), boundary(gt)
    to_gt = ndimage.distance_transform_edt(~edge_g)[edge_p]
    to_pred = ndimage.distance_transform_edt(~edge_p)[edge_g]
    return float(max(np.percentile(to_gt, 95), np.percentile(to_pred, 95)))


def case_metrics(pred: np.ndarray, gt: np.ndarray, with_hd95: bool = True) -> dict[str, float | None]:
    """All per-case metrics of a binary prediction against its ground truth."""
    tp, fp, fn, tn = confusion(pred, gt)
    both_empty = tp + fp + fn == 0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
        "specificity": _ratio(tn, tn + fp, True),
        "accuracy": (tp + tn) / pred.size,
        "hd95": hd95(pred, gt) if with_hd95 else None,
    }


def pooled(counts: Iterable[tuple[int, int, int, int]]) -> dict[str, float]:
    """Dataset-level Dice and IoU from confusion counts summed over all pixels of all cases."""
    tp = fp = fn = 0
    for a, b, c, _ in counts:
        tp, fp, fn = tp + a, fp + b, fn + c
    both_empty = tp + fp + fn == 0
    return {"dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty), "iou": _ratio(tp, tp + fp + fn, both_empty)}


def mean_metrics(cases: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of each metric over cases; undefined values (None) are left out of that metric's mean."""
    out: dict[str, float | None] = {}
    for name in METRICS:
        values = [c[name] for c in cases if c.get(name) is not None]
        out[name] = float(np.mean(values)) if values else None
    return out


def bootstrap_ci(values: Sequence[float], n: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n, arr.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def paired_difference(
    a: Sequence[float], b: Sequence[float], n: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean of ``a - b`` over paired cases (the same images scored twice) and its percentile
    bootstrap CI, resampling cases; ``a`` and ``b`` line up case by case."""
    if len(a) != len(b):
        raise ValueError(f"paired_difference needs the same cases on both sides, got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    lo, hi = bootstrap_ci(diff, n=n, seed=seed, level=level)
    return {"mean": float(diff.mean()) if diff.size else math.nan, "ci95": [lo, hi], "cases": int(diff.size)}


def authors_protocol_dice(
    probs: np.ndarray, gts: np.ndarray, batch_size: int, thresholds: Sequence[float] | None = None
) -> dict[str, float]:
    """The authors' test metric, for comparison only: in each batch of ``batch_size`` cases, pixels
    are pooled and the threshold that maximises Dice on the test labels is chosen; the batch Dices
    are averaged. ``probs`` and ``gts``: ``(N, H, W)`` at network resolution.
    """
    grid = np.asarray(thresholds if thresholds is not None else THRESHOLD_GRID)
    dices, chosen = [], []
    for start in range(0, len(probs), batch_size):
        p, g = probs[start : start + batch_size], gts[start : start + batch_size].astype(bool)
        best = (-1.0, 0.5)
        for t in grid:
            pred = p > t
            tp = np.count_nonzero(pred & g)
            den = np.count_nonzero(pred) + np.count_nonzero(g)
            d = BOTH_EMPTY if den == 0 else 2 * tp / den
            if d > best[0]:
                best = (d, float(t))
        dices.append(best[0])
        chosen.append(best[1])
    return {"dice": float(np.mean(dices)), "batches": len(dices), "thresholds": chosen}
