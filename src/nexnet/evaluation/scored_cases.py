"""Which cases ``evaluate`` may score: by default the split the model was trained on; never a case it
trained or was selected on, by id before any image is decoded, then by pixels, under any name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data import (
    DataConfig,
    RunData,
    Split,
    discover_and_split,
    prepare_data,
    refuse_seen_pixels,
    seen_pixel_cases,
)
from ..data.cache import is_cached
from ..errors import NexnetError
from ..models.checkpoint import Checkpoint

RETRAIN = "retrain on a split with a test part (paper, kfold:5/1 or seeded)"
DROP_SEEN = "or pass --drop-seen to score only the cases it never saw (the rest named in summary.json)"


@dataclass
class ScoredData:
    """The decoded data, and the scored cases left out (``--drop-seen``) because the model saw them."""

    data: RunData
    left_out: list[str] = field(default_factory=list)


def recorded_split(checkpoint: str | Path | Checkpoint) -> tuple[Path, Split] | None:
    """The split a checkpoint was trained on: its ``split.json``, else its run folder's; refused if it
    no longer matches the fingerprint in the checkpoint's ``config.json``."""
    record = Checkpoint.read(checkpoint)
    if (where := record.split_file) is None:
        return None
    split = Split.load(where)
    if any(split.ids_sha256(part) != digest for part, digest in record.record.get("split_sha256", {}).items()):
        raise NexnetError(f"{where}: differs from the split {record.path} was trained on (its config.json's "
                          "split_sha256); restore the run's split.json")  # fmt: skip
    return where, split


def no_cases(split: str, part: str, data_root: str | Path, trained_on_it: bool, own_split: bool = False) -> NexnetError:
    """The refusal for a split without the ``part`` to score, with the way that would work."""
    if part == "all":
        return NexnetError(f"no readable cases in {data_root}")
    if own_split:
        return NexnetError(f"the model's own split ({split}) has no {part} cases in {data_root}, so it has no "
                           f"honest {part} score there; {RETRAIN}, or score a dataset it never saw with "
                           "--subset all")  # fmt: skip
    way = "leave out --split to score the model's own test cases" if trained_on_it else (
        "try --subset all for a dataset the model never saw")  # fmt: skip
    return NexnetError(f"split {split} has no {part} cases in {data_root}; {way}")


def refuse_seen_cases(trained: Split, scored: Split, subset: str, drop_seen: bool = False) -> list[str]:
    """The ``subset`` cases of ``scored`` that were used to train (or, for test, to select) the model:
    refused in one line, or returned to be left out with ``drop_seen``."""
    seen_parts = ("train",) if subset == "val" else ("train", "val")
    seen = {i for part in seen_parts for i in trained.parts()[part]}
    cases = scored.parts()[subset]
    overlap = sorted(seen.intersection(cases))
    if not overlap or drop_seen:
        return overlap
    ways = []
    if trained.parts()[subset]:
        ways.append(f"leave out --split to score its own {subset} cases (split {trained.name}, seed {trained.seed})")
    if scored.name == trained.name and scored.seed != trained.seed:
        ways.append(f"pass --split-seed {trained.seed}")
    ways.append(DROP_SEEN if len(overlap) < len(cases) else "score a dataset it never saw with --subset all")
    raise NexnetError(f"{len(overlap)} of the {len(cases)} {subset} cases of split {scored.name} (seed {scored.seed}) "
                      f"were used to train or select this model (e.g. {overlap[0]}); {', or '.join(ways)}")  # fmt: skip


def scored_data(checkpoint: Checkpoint, wanted: DataConfig, split_seed: int | None, subset: str,
                say: Callable[[str], None], threshold_on_val: bool = False,
                drop_seen: bool = False) -> ScoredData:  # fmt: skip
    """The data to score: by default the split the model was trained on, with its seed. A scored case
    the model trained or was selected on is refused (or, with ``drop_seen``, left out)."""
    found = recorded_split(checkpoint)
    trained = found[1] if found is not None and found[1].dataset == wanted.dataset else None
    own_split = wanted.split is None and trained is not None
    if own_split:
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
            raise no_cases(made[1].name, part, wanted.data_root, trained is not None and part == subset, own_split)
    left_out: list[str] = []
    if trained is not None:
        if subset == "all":
            raise NexnetError(f"--subset all scores every {trained.dataset} case, and this model was trained on "
                              f"{trained.dataset}; use --subset test")  # fmt: skip
        left_out = refuse_seen_cases(trained, made[1], subset, drop_seen)
    data = prepare_data(wanted, made=_only_scored(made, subset, threshold_on_val, int(wanted.image_size)))
    left_out += _seen_by_pixels(checkpoint, data, subset, left_out, say, threshold_on_val, drop_seen)
    scored = sorted(data.arrays.ids) if subset == "all" else data.split.parts()[subset]
    if left_out and not set(scored) - set(left_out):
        raise NexnetError(f"the model saw every one of the {len(scored)} {subset} cases; score a dataset it never "
                          "saw with --subset all")  # fmt: skip
    if left_out:
        say(f"note: {len(left_out)} {subset} cases the model trained or was selected on are left out (--drop-seen)")
    return ScoredData(data, sorted(set(left_out)))


def _only_scored(made: tuple, subset: str, with_val: bool, size: int) -> tuple:
    """The discovery with only the pairs to score (and to choose the threshold on), so that nothing
    else is decoded; unless the whole dataset is cached at ``size`` already (by training on it):
    that cache is memory-mapped and decodes nothing."""
    found, split, problems = made
    if subset == "all" or is_cached(found.pairs, size):
        return made
    keep = set(split.parts()[subset]) | (set(split.val) if with_val else set())
    return replace(found, pairs=[p for p in found.pairs if p.id in keep]), split, problems


def _seen_by_pixels(checkpoint: Checkpoint, data: RunData, subset: str, left_out: list[str],
                    say: Callable[[str], None], threshold_on_val: bool, drop_seen: bool) -> list[str]:  # fmt: skip
    """Scored cases pixel-identical to images the model trained (or, for test, was selected) on,
    under any name or dataset: refused, or returned with ``drop_seen``."""
    seen = checkpoint.seen_images()
    if seen is None:
        say(f"note: {checkpoint.path} records no images it was trained on, so overlap with the scored cases "
            "cannot be checked")  # fmt: skip
        return []
    scored = sorted(data.arrays.ids) if subset == "all" else data.split.parts()[subset]
    scored = [i for i in scored if i not in set(left_out)]
    seen_for = set(seen["train"]) | (set() if subset == "val" else set(seen["val"]))
    fix = f"score cases it never saw: its own test split, or data it was not trained on, {DROP_SEEN}"
    if not drop_seen:
        refuse_seen_pixels(seen_for, data, scored, f"{subset} cases", "this model was trained or selected on", fix)
    if threshold_on_val:
        what, fix = "validation cases that would choose the threshold", "use --threshold 0.5, or the model's own split"
        refuse_seen_pixels(set(seen["train"]), data, data.split.val, what, "this model was trained on", fix)
    return seen_pixel_cases(seen_for, data, scored)
