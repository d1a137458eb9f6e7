"""``nexnet predict`` and ``nexnet score``: masks for any images, and scoring any mask folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import Split, read_image, read_mask
from ..data.discovery import Discovery, by_stem, list_image_files, source_folders
from ..errors import DataError, NexnetError
from ..io import atomic_write_json
from ..outputs import refuse_foreign_files, refuse_inside_sources
from ..plots import image_grid, overlay, save_png
from ..runtime import slow_autocast_note
from .predictor import Predictor, predict_mask

GT_SUFFIXES = ("", "_segmentation", "_Segmentation", "_mask", "_lesion")


def input_images(path: Path) -> list[Path]:
    if not path.exists():
        raise NexnetError(f"{path}: input does not exist")
    if path.is_file():
        return [path]
    files = list_image_files(path, Discovery())
    if not files:
        holding = [d for d in sorted(path.rglob("*")) if d.is_dir() and list_image_files(d, Discovery())][:3]
        hint = (f"; these subfolders hold images: {', '.join(str(d) for d in holding)}: pass one as --input"
                if holding else "")  # a dataset's root, say (PH2 nests each case)  # fmt: skip
        raise NexnetError(f"{path}: no image files in this folder{hint}")
    return files


def output_names(files: list[Path]) -> dict[Path, str]:
    """``stem.png`` per input; inputs that share a stem keep their suffix so no output overwrites another."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    return {f: (f"{f.stem}.png" if stems[f.stem] == 1 else f"{f.name}.png") for f in files}


PREDICT_RECORD = "predict.json"  # marks a folder predict wrote, so a rerun may replace its masks


def _check_out(inp: Path, out: Path, gt: Path | None) -> None:
    refuse_inside_sources(
        out, "--out", {**source_folders("--input", inp, besides=[out]), **source_folders("--gt", gt, besides=[out])}
    )
    if not (out / PREDICT_RECORD).is_file():
        refuse_foreign_files(out, "--out", ours=())


def find_gt(gt_dir: Path | None, stems: list[str]) -> dict[str, Path]:
    if gt_dir is None:
        return {}
    if not gt_dir.is_dir():
        raise NexnetError(f"--gt {gt_dir}: not a folder")
    suffix = max(GT_SUFFIXES, key=lambda s: sum(1 for st in stems if any(gt_dir.glob(f"{st}{s}.*"))))
    return by_stem(list_image_files(gt_dir, Discovery()), Discovery(), strip=suffix)


def split_part(split_file: str | Path | None, subset: str) -> set[str] | None:
    """The case ids of one part of a ``split.json`` (None without a file)."""
    if split_file is None:
        return None
    ids = set(Split.load(split_file).parts()[subset])
    if not ids:
        raise NexnetError(f"--split-file {split_file}: its {subset} part is empty")
    return ids


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
            subset: str = "test") -> dict[str, Any]:  # fmt: skip
    """Masks for one image or a folder of images (with ``split_file``, only those of its ``subset``)."""
    inp, out = Path(inp), Path(out)
    files = only_part(input_images(inp), split_part(split_file, subset), "--input")
    _check_out(inp, out, Path(gt) if gt else None)
    if onnx is not None:
        if amp:
            raise NexnetError("--amp applies to --checkpoint; an ONNX file runs in the precision it was exported in")
        from .export import OnnxPredictor

        pred: Predictor | OnnxPredictor = OnnxPredictor.load(onnx)
    elif checkpoint is not None:
        pred = Predictor.load(checkpoint, device, amp=amp, graphs=graphs)  # graphs: CUDA only
        if note := slow_autocast_note(pred.amp, pred.device):
            say(f"note: {note}")
    else:
        raise NexnetError("give --checkpoint DIR or --onnx FILE")
    names = output_names(files)
    gts = find_gt(Path(gt) if gt else None, [f.stem for f in files])
    record = {"checkpoint": str(checkpoint or ""), "onnx": str(onnx or ""), "input": str(inp.resolve()), "tta": tta,
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
