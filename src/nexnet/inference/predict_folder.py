"""``nexnet predict`` and ``nexnet score``: masks for any images, and scoring any mask folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import find_gt, read_image, read_mask, split_part
from ..data.discovery import Discovery, list_image_files, looks_like_mask_folder, source_folders
from ..errors import DataError, NexnetError
from ..io import atomic_write_json
from ..outputs import PREDICT_RECORD, refuse_foreign_files, refuse_inside_sources
from ..plots import image_grid, overlay, save_png
from ..runtime import slow_autocast_note
from .backends import load_predictor
from .predictor import Predictor, predict_mask


def input_images(path: Path) -> list[Path]:
    if not path.exists():
        raise NexnetError(f"{path}: input does not exist")
    if path.is_file():
        return [path]
    files = list_image_files(path, Discovery())
    if not files:
        holding = [d for d in sorted(path.rglob("*")) if d.is_dir() and not looks_like_mask_folder(d)
                   and list_image_files(d, Discovery())]  # fmt: skip
        more = f" and {len(holding) - 3} more" if len(holding) > 3 else ""
        hint = (f"; these subfolders hold images: {', '.join(str(d) for d in holding[:3])}{more}: pass one as --input"
                if holding else "")  # a dataset's root, say (PH2 nests each case)  # fmt: skip
        raise NexnetError(f"{path}: no image files in this folder{hint}")
    return files


def output_names(files: list[Path]) -> dict[Path, str]:
    """``stem.png`` per input; inputs that share a stem keep their suffix so no output overwrites another."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    return {f: (f"{f.stem}.png" if stems[f.stem] == 1 else f"{f.name}.png") for f in files}


def _check_out(inp: Path, out: Path, gt: Path | None) -> None:
    refuse_inside_sources(
        out, "--out", {**source_folders("--input", inp, besides=[out]), **source_folders("--gt", gt, besides=[out])}
    )
    if not (out / PREDICT_RECORD).is_file():
        refuse_foreign_files(out, "--out", ours=())


def only_part(files: list[Path], ids: set[str] | None, what: str) -> list[Path]:
    """The files whose stem is a case id of the chosen part (all files without a split file)."""
    if ids is None:
        return files
    kept = [f for f in files if f.stem in ids]
    if not kept:
        raise NexnetError(f"no {what} file is named after a case of the chosen --subset (e.g. {files[0].name}); "
                          "is this the split of that dataset?")  # fmt: skip
    return kept


def predict(checkpoint: str | Path | None, inp: str | Path, out: str | Path, overlays: bool = False,
            gt: str | Path | None = None, tta: bool = False, device: str = "auto",
            say: Callable[[str], None] = tqdm.write, onnx: str | Path | None = None,
            amp: bool | str = False, graphs: bool = True, split_file: str | Path | None = None,
            subset: str = "test", openvino: str | Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Masks for one image or a folder of images (with ``split_file``, only those of its ``subset``)."""
    inp, out = Path(inp), Path(out)
    files = only_part(input_images(inp), split_part(split_file, subset), "--input")
    _check_out(inp, out, Path(gt) if gt else None)
    pred = load_predictor(None if onnx or openvino else checkpoint, onnx, openvino, device, amp, graphs)
    if isinstance(pred, Predictor) and (note := slow_autocast_note(pred.amp, pred.device)):
        say(f"note: {note}")
    names = output_names(files)
    gts = find_gt(Path(gt) if gt else None, [f.stem for f in files])
    record = {"checkpoint": str(checkpoint or ""), "onnx": str(onnx or ""), "openvino": str(openvino or ""),
              "precision": pred.precision, "input": str(inp.resolve()), "tta": tta,
              "threshold": pred.threshold, "split_file": str(split_file) if split_file else None,
              "subset": subset if split_file else None}  # fmt: skip
    atomic_write_json(out / PREDICT_RECORD, record)
    written, failed, previews = 0, [], []
    for f in tqdm(files, desc="predicting", unit="img", leave=False):
        try:
            image = read_image(f)
            mask = predict_mask(pred, image, tta)
            save_png(out / names[f], (mask * 255).astype(np.uint8))
            written += 1
            if overlays:
                gt_mask = read_mask(gts[f.stem]) if f.stem in gts else None
                if gt_mask is not None and gt_mask.shape != mask.shape:
                    raise DataError(f"{gts[f.stem]}: ground truth size differs from {f.name}")
                ov = overlay(image, mask, gt_mask)
                save_png(out / "overlays" / names[f], ov)
                if len(previews) < 12:
                    previews.append((ov, f.stem))
        except DataError as e:
            failed.append(str(e))
            say(f"skipped: {e}")
    if previews:
        save_png(out / "overlays.png", image_grid([p[0] for p in previews], captions=[p[1] for p in previews]))
    atomic_write_json(out / PREDICT_RECORD, {**record, "masks": written, "skipped": failed})
    say(_written_line(written, failed, out, overlays, bool(gts)))
    return {"written": written, "failed": failed}


def _written_line(written: int, failed: list[str], out: Path, overlays: bool, with_gt: bool) -> str:
    line = f"wrote {written} mask{'' if written == 1 else 's'} (0/255 PNG at each image's original size) to {out}"
    if overlays:
        legend = " (green: prediction, blue: ground truth)" if with_gt else " (green: prediction)"
        line += f"; overlays in {out / 'overlays'}{legend}"
    if failed:
        line += (
            f"; skipped {len(failed)} unreadable file{'' if len(failed) == 1 else 's'} (above, and in {PREDICT_RECORD})"
        )
    return line
