"""``nexnet score``: any folder of predicted masks against ground truth, per case, into ``summary.json``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import find_gt, read_mask, split_part
from ..data.discovery import Discovery, best_mask_suffix, by_stem, list_image_files, source_folders
from ..data.readers import mask_intensity
from ..errors import DataError, NexnetError
from ..outputs import PREDICT_RECORD, SUMMARY, refuse_foreign_files, refuse_foreign_json, refuse_inside_sources
from .summary import report, score_case, summarise

PRED_SUFFIXES = ("", "_pred", "_prediction", "_mask")  # how other tools name predicted masks


def read_prediction(path: Path) -> np.ndarray:
    """A predicted mask as 0/1: stored 0/1, 0/255, or a probability map in 0..255 (cut at half)."""
    raw = mask_intensity(path)
    if float(raw.max(initial=0)) <= 1:
        return (raw >= 0.5).astype(np.uint8)
    top = 65535 if raw.max() > 255 else 255
    return (raw > top / 2).astype(np.uint8)


def _prediction_or_empty(path: Path | None, shape: tuple[int, ...]) -> tuple[np.ndarray, str | None]:
    """The prediction at ``path`` as 0/1, or an empty mask and why when it is missing, unreadable or
    of another size: a broken file must not score better than no file."""
    empty = np.zeros(shape, np.uint8)
    if path is None:
        return empty, None
    try:
        p = read_prediction(path)
    except DataError as e:
        return empty, str(e)
    if p.shape != shape:
        return empty, (f"{path}: prediction is {p.shape[1]}x{p.shape[0]} but the ground truth is "
                       f"{shape[1]}x{shape[0]}; predict at the original size")  # fmt: skip
    return p, None


def score(pred_dir: str | Path, gt_dir: str | Path, out: str | Path | None = None,
          say: Callable[[str], None] = tqdm.write, ignore_missing: bool = False,
          split_file: str | Path | None = None, subset: str = "test") -> dict[str, Any]:  # fmt: skip
    """Score every ground-truth mask against its prediction. A mask without a prediction scores as an
    empty prediction (counted and named in ``summary.json``), unless ``ignore_missing`` leaves it out."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for d, flag in ((pred_dir, "--pred"), (gt_dir, "--gt")):
        if not d.is_dir():
            raise NexnetError(f"{flag} {d}: not a folder")
    if pred_dir.resolve() == gt_dir.resolve():
        raise NexnetError(f"--pred and --gt are the same folder ({gt_dir}); a folder scored against itself gets Dice 1")
    if out:
        refuse_inside_sources(out, "--out", source_folders("--gt", gt_dir, besides=[out], inputs=[pred_dir]))
        if not (Path(out) / PREDICT_RECORD).is_file():  # a folder predict wrote may take its summary
            refuse_foreign_files(out, "--out", {SUMMARY})
        refuse_foreign_json(Path(out) / SUMMARY, "--out", "per_case")
    gt_stems = [p.stem for p in list_image_files(gt_dir, Discovery())]
    pred_suffix = best_mask_suffix(gt_dir, pred_dir, PRED_SUFFIXES)  # pred stems relative to gt stems
    preds = by_stem(list_image_files(pred_dir, Discovery()), Discovery(), strip=pred_suffix)
    gts = find_gt(gt_dir, list(preds))
    if (ids := split_part(split_file, subset)) is not None:
        gts = {stem: path for stem, path in gts.items() if stem in ids}
    common = sorted(set(preds) & set(gts))
    if not common:
        raise NexnetError(f"no file stems in common between {pred_dir} and {gt_dir} "
                          f"(e.g. {next(iter(preds), '-')} and {gt_stems[0] if gt_stems else '-'})")  # fmt: skip
    missing = sorted(set(gts) - set(preds))
    if missing:
        how = "left out (--ignore-missing)" if ignore_missing else "scored as empty masks"
        say(f"warning: {len(missing)} ground-truth masks have no prediction (e.g. {gts[missing[0]].name}): {how}")
    cases, problems, bad_predictions = [], [], []
    for stem in tqdm(common if ignore_missing else sorted(gts), desc="scoring", leave=False):
        try:
            g = read_mask(gts[stem])
        except DataError as e:  # only the ground truth's own problem drops a case
            problems.append(str(e))
            say(f"problem: {e}")
            continue
        p, problem = _prediction_or_empty(preds.get(stem), g.shape)
        if problem:
            bad_predictions.append({"id": stem, "problem": problem})
            say(f"problem: {problem}; scored as an empty mask")
        cases.append(score_case(stem, p.astype(bool), g.astype(bool), missing_prediction=stem not in preds))
    if not cases:
        raise NexnetError("no case could be scored")
    missing_record = {"count": len(missing), "ids": missing,
                      "scored_as": "left out (--ignore-missing)" if ignore_missing else "empty masks"}  # fmt: skip
    bad_record = {"count": len(bad_predictions), "cases": bad_predictions, "scored_as": "empty masks"}
    summary = summarise(cases, {"pred": str(pred_dir), "gt": str(gt_dir),
                                "threshold": {"value": "stored masks", "chosen_on": "by the predictor"},
                                "missing_predictions": missing_record, "unusable_predictions": bad_record,
                                "problems": problems})  # fmt: skip
    return report(summary, out, say)
