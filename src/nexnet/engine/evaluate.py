"""``nexnet evaluate`` and ``nexnet score``: per-case metrics, ``summary.json`` and a table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import metrics as M
from ..data import read_mask
from ..errors import NexnetError
from ..io import atomic_write_json
from .distributed import slow_autocast_note
from .inference import Predictor, run_dir_of, to_original_size
from .runs import prepare_data

THRESHOLD_GRID = [round(t, 2) for t in np.arange(0.05, 0.96, 0.05)]


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


def _pick_threshold(probs: np.ndarray, gts: list[np.ndarray]) -> float:
    """The grid threshold with the best mean per-case Dice on the validation cases (original size)."""
    best, best_t = -1.0, 0.5
    ups = [to_original_size(p, *g.shape) for p, g in zip(probs, gts)]
    for t in THRESHOLD_GRID:
        d = float(np.mean([M.case_metrics(u > t, g, with_hd95=False)["dice"] for u, g in zip(ups, gts)]))
        if d > best:
            best, best_t = d, t
    return best_t


def evaluate(checkpoint: str | Path, dataset: str, data_root: str | Path, split: str | None = None,
             subset: str = "test", threshold: str = "0.5", tta: bool = False, protocol: str = "honest",
             out: str | Path | None = None, device: str = "auto", batch_size: int = 8,
             say: Callable[[str], None] = print, amp: bool | str = False) -> dict[str, Any]:  # fmt: skip
    pred = Predictor.load(checkpoint, device, amp=amp)
    if note := slow_autocast_note(pred.amp, pred.device):
        say(f"note: {note}")
    run = run_dir_of(checkpoint)
    if split is None and run is not None:
        split = str(run / "split.json")  # the exact cases of the training run
    data = prepare_data({"dataset": dataset, "data_root": data_root, "split": split,
                         "image_size": pred.image_size, "seed": 0, "skip_bad": False})  # fmt: skip
    pairs = {p.id: p for p in data.found.pairs}

    def probs_and_gts(part: str) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
        ids = [i for i in data.split.parts()[part] if i in pairs]
        if not ids:
            raise NexnetError(f"split {data.split.name} has no {part} cases in {data_root}")
        rows = data.arrays.index(ids)
        probs = pred.probabilities(data.arrays.images[rows], batch_size, tta)
        gts = [read_mask(pairs[i].mask) for i in tqdm(ids, desc=f"reading {part} masks", leave=False)]
        return ids, probs, gts

    if threshold == "val":
        if subset == "val":
            raise NexnetError("--threshold val with --subset val would choose the threshold on the scored cases")
        _, vp, vg = probs_and_gts("val")
        thr, chosen_on = _pick_threshold(vp, vg), "validation split (best mean Dice over 0.05..0.95)"
    else:
        try:
            thr, chosen_on = float(threshold), "fixed"
        except ValueError:
            raise NexnetError(f"--threshold {threshold!r}: a number such as 0.5, or 'val'") from None
    ids, probs, gts = probs_and_gts(subset)
    cases = [score_case(i, to_original_size(p, *g.shape) > thr, g, height=g.shape[0], width=g.shape[1])
             for i, p, g in zip(ids, probs, gts)]  # fmt: skip
    extra = {
        "checkpoint": str(checkpoint), "dataset": dataset, "split": data.split.name, "subset": subset,
        "protocol": protocol, "tta": tta, "image_size": pred.image_size, "precision": pred.precision,
        "threshold": {"value": thr, "chosen_on": chosen_on},
    }  # fmt: skip
    summary = summarise(cases, extra)
    if protocol == "paper":
        masks = data.arrays.masks[data.arrays.index(ids)]
        a = M.authors_protocol_dice(probs, masks, batch_size=batch_size)
        summary["authors_protocol"] = {**a, "label": f"authors' protocol: pixels pooled per batch of "
                                       f"{batch_size}, threshold chosen per batch on the test labels, at "
                                       f"{pred.image_size}px; not an honest estimate"}  # fmt: skip
    elif protocol != "honest":
        raise NexnetError(f"--protocol {protocol!r}: honest or paper")
    if out:
        atomic_write_json(Path(out) / "summary.json", summary)
    say(format_summary(summary))
    return summary
