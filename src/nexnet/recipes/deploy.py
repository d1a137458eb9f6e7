"""``nexnet export --format openvino``: a checkpoint as OpenVINO IR, at float32 or int8.

int8 is post-training quantization (NNCF), calibrated on the checkpoint's own training images only,
never on a validation or test image (refused by id and by pixels), then verified on its validation
cases: the export writes nothing when the int8 masks lose more than ``max_dice_drop`` of validation
mDice against the float32 ones. T-PEN's cubic term is the layer most likely to quantize badly, so a
second attempt keeps it at float32 before the export gives up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import DataConfig, RunData, discover_and_split, prepare_data, read_mask, refuse_seen_pixels, to_model_input
from ..data.discovery import source_folders
from ..errors import NexnetError
from ..evaluation.metrics import case_metrics
from ..evaluation.scored_cases import recorded_split
from ..inference import Predictor, mask_at_size
from ..inference.openvino import (
    FORMAT,
    INSTALL_HINT,
    IR,
    RECORD,
    TOLERANCE,
    compile_model,
    fp32_parity,
    require_openvino,
    to_openvino,
)
from ..io import atomic_directory, atomic_write_json
from ..models.checkpoint import TRAINING_FACTS, Checkpoint
from ..outputs import refuse_foreign_files, refuse_inside_sources
from ..training import RunFolder

DEFAULT_CALIBRATION = 300  # images: NNCF's default subset size
# What a second attempt keeps at float32: T-PEN's powers and the products that follow them.
TPEN_SCOPE = {"patterns": [".*tpen.*"], "validate": False}


def export_openvino(checkpoint: str | Path, out: str | Path, int8: bool = False, max_dice_drop: float = 0.005,
                    data_root: str | Path | None = None, calibration_images: int = DEFAULT_CALIBRATION,
                    threads: int | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """Export ``checkpoint`` to the folder ``out`` (``model.xml``, ``model.bin``, ``deploy.json``).

    Args:
        checkpoint: a checkpoint folder (a training run's ``best/``).
        out: the folder to write, whole and atomically.
        int8: quantize, calibrated on training images and verified on validation ones.
        max_dice_drop: the most validation mDice int8 may lose against float32.
        data_root: the dataset folder (default: the one the run trained on, from its ``config.yaml``).
        calibration_images: how many training images calibrate (a seeded sample).
        threads: CPU threads for OpenVINO.

    Returns:
        ``deploy.json``'s record: precision, parity with PyTorch and, for int8, the calibration ids
        and the validation mDice of each precision with the fraction of pixels whose mask differs.

    Raises:
        NexnetError: the extra missing, an ``--out`` inside the data, a float32 IR that differs from
            PyTorch, calibration that would touch a held-out image, or int8 that loses too much.
    """
    ov = require_openvino()
    record = Checkpoint.read(checkpoint)
    if int8:  # before the conversion, which takes seconds
        _check_count(calibration_images)
    if int8 and data_root is None:
        data_root = _trained_root(record)  # before anything is written: --out may not lie inside it
    refuse_inside_sources(
        out, "--out", {"--checkpoint": record.path, **source_folders("--data-root", data_root, besides=[out])}
    )
    refuse_foreign_files(out, "--out", ours={IR, "model.bin", RECORD})
    pred = Predictor.load(record, "cpu", fast_layout=False)
    model = to_openvino(pred)
    parity = fp32_parity(pred, compile_model(model, threads))
    if parity > TOLERANCE:
        raise NexnetError(f"{record.path}: the OpenVINO model differs from PyTorch by {parity:.2e} of the logits' "
                          f"scale (> {TOLERANCE:g}); nothing written")  # fmt: skip
    info: dict[str, Any] = {"format": FORMAT, "model": record.name, "config": record.model_config,
                            "image_size": pred.image_size, "threshold": pred.threshold, "precision": "float32",
                            "checkpoint": str(record.path.resolve()), "fp32_parity": parity,
                            **{k: record.record.get(k) for k in TRAINING_FACTS}}  # fmt: skip
    if int8:
        model, facts = quantize(pred, record, model, data_root, calibration_images, max_dice_drop, threads, say)
        info.update(precision="int8", **facts)
    with atomic_directory(out) as tmp:
        ov.save_model(model, str(tmp / IR), compress_to_fp16=False)
        atomic_write_json(tmp / RECORD, info)
    say(f"wrote {out} ({info['precision']}, {pred.image_size}px; float32 parity with PyTorch {parity:.1e})")
    return info


def quantize(pred: Predictor, record: Checkpoint, model: Any, data_root: str | Path | None, count: int,
             max_drop: float, threads: int | None,
             say: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """The int8 model, and what calibrated and verified it; refused in one line if it loses too much."""
    try:
        import nncf
    except ImportError:
        raise NexnetError(f"--int8 needs NNCF: {INSTALL_HINT}") from None
    data, calibration = calibration_data(record, data_root, count, pred.image_size)
    images = data.arrays.images[data.arrays.index(calibration)]
    dataset = nncf.Dataset([to_model_input(images[i : i + 1], "cpu").numpy() for i in range(len(images))])
    val = [i for i in data.split.val if i in set(data.arrays.ids)]
    if not val:
        raise NexnetError(f"--int8: {record.path}'s split has no readable validation cases to verify int8 on; "
                          "export at float32")  # fmt: skip
    reference = val_masks(_logits(compile_model(model, threads)), data, val, pred.threshold)
    tried = []
    attempts: dict[str, dict] = {"every layer": {}}
    if matching_layers(model, TPEN_SCOPE["patterns"]):  # a network without T-PEN gets no second attempt
        attempts["T-PEN at float32"] = {"ignored_scope": nncf.IgnoredScope(**TPEN_SCOPE)}
    for label, options in attempts.items():
        say(f"int8: calibrating on {len(calibration)} training images ({label})")
        quantized = nncf.quantize(model, dataset, subset_size=len(calibration), **options)
        check = verify(reference, val_masks(_logits(compile_model(quantized, threads)), data, val, pred.threshold))
        tried.append(f"{label}: {check['val_mdice_int8']:.4f}")
        if check["val_mdice_fp32"] - check["val_mdice_int8"] <= max_drop:
            say(f"int8 ({label}): validation mDice {check['val_mdice_int8']:.4f} against float32's "
                f"{check['val_mdice_fp32']:.4f} on {len(val)} cases; {check['mask_pixels_differ']:.2%} of mask "
                "pixels differ")  # fmt: skip
            return quantized, {**check, "quantized": label, "calibration_ids": calibration,
                               "calibration_part": "train", "validation_cases": len(val)}  # fmt: skip
    raise NexnetError(f"--int8: validation mDice drops by more than --max-dice-drop {max_drop:g} from float32's "
                      f"{check['val_mdice_fp32']:.4f} ({'; '.join(tried)}); nothing written: export at "
                      "float32")  # fmt: skip


def calibration_data(
    record: Checkpoint, data_root: str | Path | None, count: int, size: int
) -> tuple[RunData, list[str]]:
    """The decoded calibration, validation and test cases of the checkpoint's own split, and the
    calibration ids: a seeded sample of its training part. Refused if any is a held-out case by id,
    or pixel-identical to one (a file replaced since training, a duplicate under another name)."""
    found = recorded_split(record)
    if found is None:
        raise NexnetError(f"--int8: {record.path} has no split.json, so its training images are unknown and "
                          "calibration may use no other; export at float32, or a training run's best/")  # fmt: skip
    split_file, split = found
    root = data_root if data_root is not None else _trained_root(record)
    _check_count(count)
    wanted = DataConfig(split.dataset, str(root), str(split_file), image_size=size)
    rng = np.random.default_rng(0)
    calibration = sorted(rng.choice(sorted(split.train), min(count, len(split.train)), replace=False).tolist())
    held_out = set(split.val) | set(split.test)
    if leaked := sorted(held_out.intersection(calibration)):
        raise NexnetError(f"--int8: calibration would use {leaked[0]}, a held-out case of {split_file}")
    found_pairs, made_split, problems = discover_and_split(wanted)
    keep = set(calibration) | held_out
    made = (replace(found_pairs, pairs=[p for p in found_pairs.pairs if p.id in keep]), made_split, problems)
    data = prepare_data(wanted, made=made)
    held_hashes = set(data.pixel_hashes(sorted(held_out)).values())
    refuse_seen_pixels(held_hashes, data, calibration, "calibration images", "the model is validated or tested on",
                       "restore the training images the run had, or export at float32")  # fmt: skip
    return data, calibration


def matching_layers(model: Any, patterns: list[str]) -> list[str]:
    """The names of ``model``'s operations that an NNCF ignored scope of ``patterns`` would keep out
    (names carry the PyTorch module path, e.g. ``/encoder.0/tpen/Mul``)."""
    compiled = [re.compile(p) for p in patterns]
    names = [op.get_friendly_name() for op in model.get_ops()]
    return [name for name in names if any(c.match(name) for c in compiled)]


def _check_count(count: int) -> None:
    if count < 1:
        raise NexnetError(f"--calibration-images {count}: give at least 1 (default {DEFAULT_CALIBRATION})")


def _trained_root(record: Checkpoint) -> str:
    run = record.run_folder
    if run is None:
        raise NexnetError(f"--int8: {record.path} is not in a training run folder; pass --data-root")
    return str(RunFolder(run).read_run_config().data.data_root)


def val_masks(logits_of: Callable[[np.ndarray], np.ndarray], data: RunData, ids: list[str],
              threshold: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Each case's predicted mask at its original size, and its ground truth. ``logits_of``: a
    runtime's ``(1, 3, S, S)`` float32 -> ``(1, C, S, S)`` logits."""
    pairs = {p.id: p for p in data.found.pairs}
    out = {}
    for case in ids:
        x = to_model_input(data.arrays.images[data.arrays.index([case])], "cpu").numpy()
        prob = 1 / (1 + np.exp(-np.asarray(logits_of(x))[0, 0]))
        gt = read_mask(pairs[case].mask)
        out[case] = (mask_at_size(prob, *gt.shape, threshold), gt)
    return out


def _logits(compiled: Any) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: compiled(x)[0]


def verify(fp32: dict, int8: dict) -> dict[str, float]:
    """Validation mDice of each precision and the fraction of mask pixels where they differ."""
    dice = lambda masks: float(np.mean([case_metrics(m, g, with_hd95=False)["dice"] for m, g in masks.values()]))  # noqa: E731
    differ = sum(int(np.count_nonzero(fp32[c][0] != int8[c][0])) for c in fp32)
    pixels = sum(fp32[c][0].size for c in fp32)
    return {"val_mdice_fp32": dice(fp32), "val_mdice_int8": dice(int8), "mask_pixels_differ": differ / max(pixels, 1)}
