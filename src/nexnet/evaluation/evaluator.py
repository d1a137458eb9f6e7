"""``nexnet evaluate`` and ``nexnet score``: per-case metrics, ``summary.json`` and a table."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import DataConfig, Split, read_mask
from ..errors import NexnetError
from ..inference import Predictor, run_dir_of, to_original_size
from ..io import atomic_write_json
from ..outputs import CHECKPOINT_FILES, refuse_foreign_files, refuse_foreign_json, refuse_inside_sources
from ..runtime import slow_autocast_note
from . import metrics as M
from .scored_cases import no_cases, scored_data
from .summary import format_summary, score_case, summarise

THRESHOLD_GRID = [round(t, 2) for t in np.arange(0.05, 0.96, 0.05)]


def _pick_threshold(probs: np.ndarray, gts: list[np.ndarray]) -> float:
    """The grid threshold with the best mean per-case Dice on the validation cases (original size)."""
    best, best_t = -1.0, 0.5
    ups = [to_original_size(p, *g.shape) for p, g in zip(probs, gts)]
    for t in THRESHOLD_GRID:
        d = float(np.mean([M.case_metrics(u > t, g, with_hd95=False)["dice"] for u, g in zip(ups, gts)]))
        if d > best:
            best, best_t = d, t
    return best_t


SELECTION_NOTE = (
    "validation cases: this model was selected on them (best epoch, early stopping), so their scores are "
    "selection data, not an estimate of its accuracy; score --subset test for that"
)


def own_folder(checkpoint: str | Path, dataset: str, split: Split, subset: str) -> Path:
    """Where an evaluation goes by default: ``RUN/eval/CHECKPOINT_DATASET_SPLIT_SUBSET`` (or
    ``CHECKPOINT/eval/...`` outside a run folder), one folder per evaluation, so that none replaces
    another (and retraining, which rewrites ``best/``, loses none)."""
    safe = lambda text: re.sub(r"[^A-Za-z0-9.-]+", "-", str(text)).strip("-")  # noqa: E731
    run = run_dir_of(checkpoint)
    name = "_".join(safe(t) for t in (Path(checkpoint).resolve().name, dataset, split.name, subset))
    return (run / "eval" / name) if run is not None else Path(checkpoint) / "eval" / name.split("_", 1)[1]


def _check_out(out: str | Path, data_root: str | Path) -> None:
    refuse_inside_sources(out, "--out", {"--data-root": data_root})
    refuse_foreign_files(out, "--out", CHECKPOINT_FILES)
    refuse_foreign_json(Path(out) / "summary.json", "--out", "per_case")


def _threshold(threshold: str, subset: str, probs_and_gts: Callable[[str], tuple]) -> tuple[float, str]:
    """The threshold and what chose it: a number given, or the best on the validation split."""
    if threshold != "val":
        try:
            return float(threshold), "fixed"
        except ValueError:
            raise NexnetError(f"--threshold {threshold!r}: a number such as 0.5, or 'val'") from None
    if subset in ("val", "all"):
        raise NexnetError(f"--threshold val with --subset {subset} would choose the threshold on scored cases; "
                          "give a number, e.g. --threshold 0.5")  # fmt: skip
    _, vp, vg = probs_and_gts("val")
    return _pick_threshold(vp, vg), "validation split (best mean Dice over 0.05..0.95)"


def evaluate(checkpoint: str | Path, dataset: str, data_root: str | Path, split: str | None = None,
             subset: str = "test", threshold: str = "0.5", tta: bool = False, protocol: str = "honest",
             out: str | Path | None = None, device: str = "auto", batch_size: int = 8,
             say: Callable[[str], None] = print, amp: bool | str = False,
             split_seed: int | None = None, graphs: bool = True,
             to_own_folder: bool = False,
             skip_bad: bool = False, drop_seen: bool = False) -> dict[str, Any]:  # fmt: skip
    """Score ``checkpoint`` on ``subset`` of a split: by default the split it was trained on (its
    ``split.json``); a named split is refused if its scored cases overlap the model's own. The summary
    goes to ``out``, or with ``to_own_folder`` to :func:`own_folder`; else nowhere."""
    pred = Predictor.load(checkpoint, device, amp=amp, graphs=graphs)  # graphs: CUDA only
    if out:
        _check_out(out, data_root)
    if note := slow_autocast_note(pred.amp, pred.device):
        say(f"note: {note}")
    wanted = DataConfig(dataset, str(data_root), split, image_size=pred.image_size, skip_bad=skip_bad)
    scored = scored_data(checkpoint, wanted, split_seed, subset, say, threshold == "val", drop_seen)
    data, left_out = scored.data, set(scored.left_out)
    if not out and to_own_folder:
        out = own_folder(checkpoint, dataset, data.split, subset)
        _check_out(out, data_root)
    pairs = {p.id: p for p in data.found.pairs}

    def probs_and_gts(part: str) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
        ids = sorted(pairs) if part == "all" else [i for i in data.split.parts()[part] if i in pairs]
        ids = [i for i in ids if part != subset or i not in left_out]
        if not ids:
            raise no_cases(data.split.name, part, data_root, trained_on_it=False)
        rows = data.arrays.index(ids)
        probs = pred.probabilities(data.arrays.images[rows], batch_size, tta)
        gts = [read_mask(pairs[i].mask) for i in tqdm(ids, desc=f"reading {part} masks", leave=False)]
        return ids, probs, gts

    thr, chosen_on = _threshold(threshold, subset, probs_and_gts)
    ids, probs, gts = probs_and_gts(subset)
    cases = [score_case(i, to_original_size(p, *g.shape) > thr, g, height=g.shape[0], width=g.shape[1])
             for i, p, g in zip(ids, probs, gts)]  # fmt: skip
    extra = {
        "checkpoint": str(checkpoint), "dataset": dataset, "split": data.split.name,
        "split_seed": data.split.seed, "subset": subset,
        "protocol": protocol, "tta": tta, "image_size": pred.image_size, "precision": pred.precision,
        "threshold": {"value": thr, "chosen_on": chosen_on},
    }  # fmt: skip
    if left_out:
        extra["left_out_seen"] = {"count": len(left_out), "ids": sorted(left_out),
                                  "why": "trained or selected on by this model (--drop-seen)"}  # fmt: skip
    if subset == "val":
        extra["subset_note"] = SELECTION_NOTE
    summary = summarise(cases, extra)
    if protocol == "paper":
        masks = data.arrays.masks[data.arrays.index(ids)]
        a = M.authors_protocol_dice(probs, masks, batch_size=batch_size)
        summary["authors_protocol"] = {**a, "label": f"authors' protocol: pixels pooled per batch of "
                                       f"{batch_size}, threshold chosen per batch on the test labels, at "
                                       f"{pred.image_size}px; not an honest estimate"}  # fmt: skip
    elif protocol != "honest":
        raise NexnetError(f"--protocol {protocol!r}: honest or paper")
    say(format_summary(summary))
    if subset == "val":
        say(f"note: {SELECTION_NOTE}")
    if out:
        atomic_write_json(Path(out) / "summary.json", summary)
        say(f"wrote {Path(out) / 'summary.json'} (per-case metrics)")
    return summary
