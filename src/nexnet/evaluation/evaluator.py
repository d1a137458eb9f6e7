"""``nexnet evaluate`` and ``nexnet score``: per-case metrics, ``summary.json`` and a table."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data import SEEN, DataConfig, RunData, Split, discover_and_split, prepare_data, read_mask, refuse_seen_pixels
from ..errors import NexnetError
from ..inference import Predictor, run_dir_of, to_original_size
from ..io import atomic_write_json
from ..models.base import read_config
from ..outputs import CHECKPOINT_FILES, refuse_foreign_files, refuse_foreign_json, refuse_inside_sources
from ..runtime import slow_autocast_note
from . import metrics as M
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


def recorded_split(checkpoint: str | Path) -> tuple[Path, Split] | None:
    """The split a checkpoint was trained on: its ``split.json``, else its run folder's; refused if it
    no longer matches the fingerprint in the checkpoint's ``config.json``."""
    for folder in (Path(checkpoint), run_dir_of(checkpoint)):
        if folder is not None and (folder / "split.json").is_file():
            split = Split.load(folder / "split.json")
            recorded = read_config(checkpoint).get("split_sha256", {})
            if any(split.ids_sha256(part) != digest for part, digest in recorded.items()):
                raise NexnetError(f"{folder / 'split.json'}: differs from the split {checkpoint} was trained on "
                                  "(its config.json's split_sha256); restore the run's split.json")  # fmt: skip
            return folder / "split.json", split
    return None


def no_cases(split: str, part: str, data_root: str | Path, trained_on_it: bool) -> NexnetError:
    """The refusal for a split without the ``part`` to score, with the way that would work."""
    if part == "all":
        return NexnetError(f"no readable cases in {data_root}")
    way = "leave out --split to score the model's own test cases" if trained_on_it else (
        "try --subset all for a dataset the model never saw")  # fmt: skip
    return NexnetError(f"split {split} has no {part} cases in {data_root}; {way}")


def refuse_seen_cases(trained: Split, scored: Split, subset: str) -> None:
    """One line, if any ``subset`` case of ``scored`` was used to train (or, for test, to select) the model."""
    seen_parts = ("train",) if subset == "val" else ("train", "val")
    seen = {i for part in seen_parts for i in trained.parts()[part]}
    cases = scored.parts()[subset]
    overlap = sorted(seen.intersection(cases))
    if overlap:
        same_split_other_seed = scored.name == trained.name and scored.seed != trained.seed
        reseed = f", or pass --split-seed {trained.seed}" if same_split_other_seed else ""
        raise NexnetError(
            f"{len(overlap)} of the {len(cases)} {subset} cases of split {scored.name} (seed {scored.seed}) were "
            f"used to train or select this model (e.g. {overlap[0]}); leave out --split to score its own "
            f"{subset} cases (split {trained.name}, seed {trained.seed}){reseed}"
        )


def scored_data(checkpoint: str | Path, wanted: DataConfig, split_seed: int | None, subset: str,
                say: Callable[[str], None], threshold_on_val: bool = False) -> RunData:  # fmt: skip
    """The data to score: by default the split the model was trained on, with its seed. A split whose
    scored cases the model trained or was selected on is refused: by id before any image is
    decoded, then by pixels, under any name or dataset."""
    found = recorded_split(checkpoint)
    trained = found[1] if found is not None and found[1].dataset == wanted.dataset else None
    if wanted.split is None and trained is not None:
        if split_seed is not None and split_seed != trained.seed:
            raise NexnetError(f"--split-seed {split_seed} goes with --split NAME; without it the model's own "
                              f"split (seed {trained.seed}) is scored")  # fmt: skip
        wanted = replace(wanted, split=str(found[0]))  # the exact cases of the training run
    seed = split_seed if split_seed is not None else (trained.seed if trained is not None else 0)
    wanted = replace(wanted, seed=seed)
    made = discover_and_split(wanted)
    needed = [subset, "val"] if threshold_on_val and subset not in ("val", "all") else [subset]
    for part in needed:  # before thousands of images are decoded
        if part != "all" and not made[1].parts()[part]:
            raise no_cases(made[1].name, part, wanted.data_root, trained is not None and part == subset)
    if trained is not None:
        if subset == "all":
            raise NexnetError(f"--subset all scores every {trained.dataset} case, and this model was trained on "
                              f"{trained.dataset}; use --subset test")  # fmt: skip
        refuse_seen_cases(trained, made[1], subset)
    data = prepare_data(wanted, made=made)
    seen_file = Path(checkpoint) / SEEN
    if not seen_file.is_file():
        say(f"note: {checkpoint} records no images it was trained on, so overlap with the scored cases "
            "cannot be checked")  # fmt: skip
        return data
    seen = json.loads(seen_file.read_text())
    scored = sorted(data.arrays.ids) if subset == "all" else data.split.parts()[subset]
    seen_for = set(seen["train"]) | (set() if subset == "val" else set(seen["val"]))
    fix = "score cases it never saw: its own test split, or data it was not trained on"
    refuse_seen_pixels(seen_for, data, scored, f"{subset} cases", "this model was trained or selected on", fix)
    if threshold_on_val:
        what, fix = "validation cases that would choose the threshold", "use --threshold 0.5, or the model's own split"
        refuse_seen_pixels(set(seen["train"]), data, data.split.val, what, "this model was trained on", fix)
    return data


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
             split_seed: int | None = None, graphs: bool = True) -> dict[str, Any]:  # fmt: skip
    """Score ``checkpoint`` on ``subset`` of a split: by default the split it was trained on (its
    ``split.json``); a named split is refused if its scored cases overlap the model's own."""
    pred = Predictor.load(checkpoint, device, amp=amp, graphs=graphs)  # graphs: CUDA only
    if out:
        _check_out(out, data_root)
    if note := slow_autocast_note(pred.amp, pred.device):
        say(f"note: {note}")
    wanted = DataConfig(dataset, str(data_root), split, image_size=pred.image_size)
    data = scored_data(checkpoint, wanted, split_seed, subset, say, threshold == "val")
    pairs = {p.id: p for p in data.found.pairs}

    def probs_and_gts(part: str) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
        ids = sorted(pairs) if part == "all" else [i for i in data.split.parts()[part] if i in pairs]
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
    if out:
        atomic_write_json(Path(out) / "summary.json", summary)
        say(f"wrote {Path(out) / 'summary.json'} (per-case metrics)")
    return summary
