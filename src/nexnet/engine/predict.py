"""``nexnet predict`` and ``nexnet score``: masks for any images, and scoring any mask folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import read_image, read_mask
from ..data.discovery import Discovery, best_mask_suffix, by_stem, list_image_files
from ..data.readers import mask_intensity
from ..errors import DataError, NexnetError
from ..io import atomic_write_json
from ..plots import image_grid, overlay, save_png
from .distributed import slow_autocast_note
from .evaluate import format_summary, score_case, summarise
from .inference import Predictor, resize_input, to_original_size

GT_SUFFIXES = ("", "_segmentation", "_Segmentation", "_mask", "_lesion")
PRED_SUFFIXES = ("", "_pred", "_prediction", "_mask")


def input_images(path: Path) -> list[Path]:
    if not path.exists():
        raise NexnetError(f"{path}: input does not exist")
    if path.is_file():
        return [path]
    files = list_image_files(path, Discovery())
    if not files:
        raise NexnetError(f"{path}: no image files in this folder")
    return files


def output_names(files: list[Path]) -> dict[Path, str]:
    """``stem.png`` per input; inputs that share a stem keep their suffix so no output overwrites another."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    return {f: (f"{f.stem}.png" if stems[f.stem] == 1 else f"{f.name}.png") for f in files}


def _check_out(inp: Path, out: Path) -> None:
    src = (inp if inp.is_dir() else inp.parent).resolve()
    dst = out.resolve()
    if dst == src or src in dst.parents:
        raise NexnetError(f"--out {out}: is inside the input folder {src}; nexnet never writes there")


def find_gt(gt_dir: Path | None, stems: list[str]) -> dict[str, Path]:
    if gt_dir is None:
        return {}
    if not gt_dir.is_dir():
        raise NexnetError(f"--gt {gt_dir}: not a folder")
    suffix = max(GT_SUFFIXES, key=lambda s: sum(1 for st in stems if any(gt_dir.glob(f"{st}{s}.*"))))
    return by_stem(list_image_files(gt_dir, Discovery()), Discovery(), strip=suffix)


def predict(checkpoint: str | Path | None, inp: str | Path, out: str | Path, overlays: bool = False,
            gt: str | Path | None = None, tta: bool = False, device: str = "auto",
            say: Callable[[str], None] = tqdm.write, onnx: str | Path | None = None,
            amp: bool | str = False) -> dict[str, Any]:  # fmt: skip
    inp, out = Path(inp), Path(out)
    files = input_images(inp)
    _check_out(inp, out)
    if onnx is not None:
        if amp:
            raise NexnetError("--amp applies to --checkpoint; an ONNX file runs in the precision it was exported in")
        from .export import OnnxPredictor

        pred: Predictor | OnnxPredictor = OnnxPredictor.load(onnx)
    elif checkpoint is not None:
        pred = Predictor.load(checkpoint, device, amp=amp)
        if note := slow_autocast_note(pred.amp, pred.device):
            say(f"note: {note}")
    else:
        raise NexnetError("give --checkpoint DIR or --onnx FILE")
    names = output_names(files)
    gts = find_gt(Path(gt) if gt else None, [f.stem for f in files])
    written, failed, previews = 0, [], []
    for f in tqdm(files, desc="predicting", unit="img", leave=False):
        try:
            image = read_image(f)
            prob = pred.probabilities(resize_input(image, pred.image_size)[None], tta=tta)[0]
            mask = to_original_size(prob, *image.shape[:2]) > pred.threshold
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
    legend = " (green: prediction, blue: ground truth)" if gts else " (green: prediction)"
    say(f"wrote {written} masks (0/255 PNG at each image's original size) to {out}"
        + (f"; overlays in {out / 'overlays'}{legend}" if overlays else ""))  # fmt: skip
    return {"written": written, "failed": failed}


def read_prediction(path: Path) -> np.ndarray:
    """A predicted mask as 0/1: stored 0/1, 0/255, or a probability map in 0..255 (cut at half)."""
    raw = mask_intensity(path)
    if float(raw.max(initial=0)) <= 1:
        return (raw >= 0.5).astype(np.uint8)
    top = 65535 if raw.max() > 255 else 255
    return (raw > top / 2).astype(np.uint8)


def score(pred_dir: str | Path, gt_dir: str | Path, out: str | Path | None = None,
          say: Callable[[str], None] = tqdm.write) -> dict[str, Any]:  # fmt: skip
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for d, flag in ((pred_dir, "--pred"), (gt_dir, "--gt")):
        if not d.is_dir():
            raise NexnetError(f"{flag} {d}: not a folder")
    gt_stems = [p.stem for p in list_image_files(gt_dir, Discovery())]
    pred_suffix = best_mask_suffix(gt_dir, pred_dir, PRED_SUFFIXES)  # pred stems relative to gt stems
    preds = by_stem(list_image_files(pred_dir, Discovery()), Discovery(), strip=pred_suffix)
    gts = find_gt(gt_dir, list(preds))
    common = sorted(set(preds) & set(gts))
    if not common:
        raise NexnetError(f"no file stems in common between {pred_dir} and {gt_dir} "
                          f"(e.g. {next(iter(preds), '-')} and {gt_stems[0] if gt_stems else '-'})")  # fmt: skip
    unpredicted = sorted(set(gts) - set(preds))
    if unpredicted:
        say(f"warning: {len(unpredicted)} ground-truth masks have no prediction (e.g. {gts[unpredicted[0]].name}); "
            f"scoring the {len(common)} in common")  # fmt: skip
    cases, problems = [], []
    for stem in tqdm(common, desc="scoring", leave=False):
        try:
            p, g = read_prediction(preds[stem]), read_mask(gts[stem])
            if p.shape != g.shape:
                raise DataError(f"{preds[stem]}: prediction is {p.shape[1]}x{p.shape[0]} but the ground "
                                f"truth is {g.shape[1]}x{g.shape[0]}; predict at the original size")  # fmt: skip
            cases.append(score_case(stem, p.astype(bool), g.astype(bool)))
        except DataError as e:
            problems.append(str(e))
            say(f"problem: {e}")
    if not cases:
        raise NexnetError("no case could be scored")
    summary = summarise(cases, {"pred": str(pred_dir), "gt": str(gt_dir),
                                "threshold": {"value": "stored masks", "chosen_on": "by the predictor"},
                                "problems": problems})  # fmt: skip
    if out:
        atomic_write_json(Path(out) / "summary.json", summary)
    say(format_summary(summary))
    return summary
