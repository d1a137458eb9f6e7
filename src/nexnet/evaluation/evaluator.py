"""``nexnet evaluate``: a checkpoint on a split, per case at original size, into ``summary.json``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import DataConfig, Split, read_mask
from ..data.discovery import source_folders
from ..errors import NexnetError
from ..inference import Predictor, mask_at_size, to_original_size
from ..inference.backends import load_predictor, refuse_other_model
from ..models.checkpoint import Checkpoint
from ..outputs import CHECKPOINT_FILES, SUMMARY, refuse_foreign_files, refuse_foreign_json, refuse_inside_sources
from ..runtime import slow_autocast_note
from . import metrics as M
from .scored_cases import no_cases, scored_data
from .summary import report, score_case, summarise

Chunks = Iterator[tuple[list[str], np.ndarray]]  # case ids and their probabilities at network size


def _pick_threshold(chunks: Chunks, mask_of: Callable[[str], np.ndarray]) -> float:
    """The grid threshold with the best mean per-case Dice on the validation cases (original size),
    case by case: one mask and one upsampled map in memory at a time."""
    sums, n = np.zeros(len(M.THRESHOLD_GRID)), 0
    for ids, probs in chunks:
        for case, p in zip(ids, probs):
            g = mask_of(case)
            up = to_original_size(p, *g.shape)
            sums += [M.case_metrics(up > t, g, with_hd95=False)["dice"] for t in M.THRESHOLD_GRID]
            n += 1
    return float(M.THRESHOLD_GRID[int(np.argmax(sums / max(n, 1)))])  # the first best, as the grid is ordered


def _score(chunks: Chunks, mask_of: Callable[[str], np.ndarray], thr: float,
           paper_masks: Callable[[list[str]], np.ndarray] | None, batch_size: int
           ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:  # fmt: skip
    """Per-case metrics at each image's original size, one case in memory at a time; with
    ``paper_masks`` (the masks at network size), the authors' protocol too."""
    cases, authors = [], []
    for ids, probs in chunks:
        for case, p in zip(ids, probs):
            g = mask_of(case)
            cases.append(score_case(case, mask_at_size(p, *g.shape, thr), g, height=g.shape[0], width=g.shape[1]))
        if paper_masks is not None:
            authors.append(M.authors_protocol_dice(probs, paper_masks(ids), batch_size))
    return cases, (_joined_authors(authors) if paper_masks is not None else None)


def _joined_authors(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The authors' protocol over chunks that each hold whole batches: the mean over all batches."""
    batches = sum(a["batches"] for a in parts)
    return {"dice": float(sum(a["dice"] * a["batches"] for a in parts) / max(batches, 1)), "batches": batches,
            "thresholds": [t for a in parts for t in a["thresholds"]]}  # fmt: skip


SELECTION_NOTE = (
    "validation cases: this model was selected on them (best epoch, early stopping), so their scores are "
    "selection data, not an estimate of its accuracy; score --subset test for that"
)


def own_folder(checkpoint: Checkpoint, dataset: str, split: Split, subset: str, variant: tuple[str, ...] = ()) -> Path:
    """Where an evaluation goes by default: ``RUN/eval/CHECKPOINT_DATASET_SPLIT_SUBSET[_VARIANT...]``
    (or ``CHECKPOINT/eval/...`` outside a run folder), one folder per evaluation, so that none
    replaces another (and retraining, which rewrites ``best/``, loses none). ``variant``: what else
    changes the scores (:func:`variant_of`)."""
    safe = lambda text: re.sub(r"[^A-Za-z0-9.-]+", "-", str(text)).strip("-")  # noqa: E731
    run = checkpoint.run_folder
    name = "_".join(safe(t) for t in (checkpoint.path.resolve().name, dataset, split.name, subset, *variant))
    return (run / "eval" / name) if run is not None else checkpoint.path / "eval" / name.split("_", 1)[1]


def variant_of(runtime: str | None, precision: str, threshold: str, tta: bool, protocol: str) -> tuple[str, ...]:
    """The parts of an evaluation's folder name beyond its cases, for each setting that changes its
    numbers: the export (``onnx-FILE``, ``openvino-FOLDER``), a precision other than float32, a
    threshold other than 0.5, ``tta``, ``paper``. The plain honest evaluation has none."""
    parts = [runtime] if runtime else []
    parts += [precision.split()[0]] if precision != "float32" else []
    parts += [] if _is_half(threshold) else [f"thr-{_number(threshold)}"]
    return (*parts, *(["tta"] if tta else []), *(["paper"] if protocol == "paper" else []))


def _is_half(threshold: str) -> bool:
    return _number(threshold) == "0.5"


def _number(text: str) -> str:
    """``0.40`` and ``.4`` as ``0.4``; anything else (``val``) as it is."""
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def _check_out(out: str | Path, data_root: str | Path) -> None:
    refuse_inside_sources(out, "--out", source_folders("--data-root", data_root, besides=[out]))
    refuse_foreign_files(out, "--out", CHECKPOINT_FILES)
    refuse_foreign_json(Path(out) / SUMMARY, "--out", "per_case")


def _threshold(threshold: str, subset: str, on_validation: Callable[[], float]) -> tuple[float, str]:
    """The threshold and what chose it: a number given, or the best on the validation split."""
    if threshold != "val":
        try:
            return float(threshold), "fixed"
        except ValueError:
            raise NexnetError(f"--threshold {threshold!r}: a number such as 0.5, or 'val'") from None
    if subset in ("val", "all"):
        raise NexnetError(f"--threshold val with --subset {subset} would choose the threshold on scored cases; "
                          "give a number, e.g. --threshold 0.5")  # fmt: skip
    return on_validation(), "validation split (best mean Dice over 0.05..0.95)"


def _predictor(record: Checkpoint, onnx: str | Path | None, openvino: str | Path | None, device: str,
               amp: bool | str, graphs: bool, say: Callable[[str], None]) -> Any:  # fmt: skip
    """The checkpoint's predictor, or its export's (refused if it is another model's)."""
    pred = load_predictor(record, onnx, openvino, device, amp, graphs)
    if onnx is not None or openvino is not None:
        refuse_other_model(pred, record, "--onnx" if onnx is not None else "--openvino")
    if isinstance(pred, Predictor) and (note := slow_autocast_note(pred.amp, pred.device)):
        say(f"note: {note}")
    return pred


def evaluate(checkpoint: str | Path, dataset: str, data_root: str | Path, split: str | None = None,
             subset: str = "test", threshold: str = "0.5", tta: bool = False, protocol: str = "honest",
             out: str | Path | None = None, device: str = "auto", batch_size: int = 8,
             say: Callable[[str], None] = print, amp: bool | str = False,
             split_seed: int | None = None, graphs: bool = True,
             to_own_folder: bool = False, skip_bad: bool = False, drop_seen: bool = False,
             onnx: str | Path | None = None, openvino: str | Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Score ``checkpoint`` on ``subset`` of a split: by default the split it was trained on (its
    ``split.json``); a named split is refused if its scored cases overlap the model's own. The summary
    goes to ``out``, or with ``to_own_folder`` to :func:`own_folder`; else nowhere. With ``onnx`` or
    ``openvino``, that export of the checkpoint's model computes the masks; the checkpoint still names
    the cases the model saw."""
    if protocol not in ("honest", "paper"):
        raise NexnetError(f"--protocol {protocol!r}: honest or paper")
    record = Checkpoint.read(checkpoint)  # read once: for the model, its split and the images it saw
    pred = _predictor(record, onnx, openvino, device, amp, graphs, say)
    if out:
        _check_out(out, data_root)
    wanted = DataConfig(dataset, str(data_root), split, image_size=pred.image_size, skip_bad=skip_bad)
    scored = scored_data(record, wanted, split_seed, subset, say, threshold == "val", drop_seen)
    data, left_out = scored.data, set(scored.left_out)
    if not out and to_own_folder:
        runtime = f"onnx-{Path(onnx).name}" if onnx else f"openvino-{Path(openvino).name}" if openvino else None
        variant = variant_of(runtime, pred.precision, threshold, tta, protocol)
        out = own_folder(record, dataset, data.split, subset, variant)
        _check_out(out, data_root)
    pairs = {p.id: p for p in data.found.pairs}

    def chunks(part: str) -> Chunks:  # a few batches at a time, so memory does not grow with the cases
        ids = sorted(pairs) if part == "all" else [i for i in data.split.parts()[part] if i in pairs]
        ids = [i for i in ids if part != subset or i not in left_out]
        if not ids:
            raise no_cases(data.split.name, part, data_root, trained_on_it=False)
        step = batch_size * 8  # whole batches, so the authors' per-batch pooling is unchanged
        for start in tqdm(range(0, len(ids), step), desc=f"scoring {part}", unit="chunk", leave=False):
            chunk = ids[start : start + step]
            yield chunk, pred.probabilities(data.arrays.images[data.arrays.index(chunk)], batch_size, tta)

    def mask_of(case: str) -> np.ndarray:
        return read_mask(pairs[case].mask)

    thr, chosen_on = _threshold(threshold, subset, lambda: _pick_threshold(chunks("val"), mask_of))
    paper = (lambda ids: data.arrays.masks[data.arrays.index(ids)]) if protocol == "paper" else None
    cases, authors = _score(chunks(subset), mask_of, thr, paper, batch_size)
    summary = summarise(cases, {
        "checkpoint": str(checkpoint), "dataset": dataset, "split": data.split.name,
        "split_seed": data.split.seed, "subset": subset,
        "protocol": protocol, "tta": tta, "image_size": pred.image_size, "precision": pred.precision,
        "runtime": str(pred.device), **({"export": str(onnx or openvino)} if onnx or openvino else {}),
        "threshold": {"value": thr, "chosen_on": chosen_on},
        **({"left_out_seen": {"count": len(left_out), "ids": sorted(left_out),
                              "why": "trained or selected on by this model (--drop-seen)"}} if left_out else {}),
        **({"subset_note": SELECTION_NOTE} if subset == "val" else {}),
    })  # fmt: skip
    if authors is not None:
        summary["authors_protocol"] = {**authors, "label": f"authors' protocol: pixels pooled per batch of "
                                       f"{batch_size}, threshold chosen per batch on the test labels, at "
                                       f"{pred.image_size}px; not an honest estimate"}  # fmt: skip
    return report(summary, out, say)
