"""The data of a run: discover the pairs, make the split, decode into the array cache; and the
refusal of images a model has already seen, by their pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NexnetError
from .adapters import get_adapter
from .cache import ArrayCache, build_arrays
from .config import DataConfig
from .discovery import Discovery
from .splits import Split, build_split, cross_part_duplicates


@dataclass
class RunData:
    found: Discovery
    split: Split
    arrays: ArrayCache
    warnings: list[str]

    def rows(self, part: str) -> np.ndarray:
        ids = set(self.arrays.ids)
        return self.arrays.index([i for i in self.split.parts()[part] if i in ids])

    def pixel_hashes(self, ids: list[str]) -> dict[str, str]:
        """Case id -> hash of its decoded pixels, for the readable ``ids``: the same image under any
        name or dataset has the same hash."""
        facts = self.arrays.facts
        return {i: facts[i].pixel_hash for i in ids if i in facts and facts[i].pixel_hash}

    def seen_images(self) -> dict[str, list[str]]:
        """What a model trained on this data has seen: pixel hashes of its train and val parts."""
        return {part: sorted(set(self.pixel_hashes(self.split.parts()[part]).values())) for part in ("train", "val")}


def seen_pixel_cases(seen: set[str], data: RunData, ids: list[str]) -> list[str]:
    """Those of ``ids`` whose decoded pixels are those of an image in ``seen`` (any name or dataset)."""
    return sorted(i for i, h in data.pixel_hashes(ids).items() if h in seen)


def refuse_seen_pixels(seen: set[str], data: RunData, ids: list[str], what: str, seen_as: str, fix: str) -> None:
    """One line if any of ``ids`` is pixel-identical to an image in ``seen`` (under any name or dataset)."""
    hits = seen_pixel_cases(seen, data, ids)
    if hits:
        raise NexnetError(f"{len(hits)} of the {len(ids)} {what} are pixel-identical to images {seen_as} "
                          f"(e.g. {hits[0]}); {fix}")  # fmt: skip


def discover_and_split(data: DataConfig | dict,
                       split_override: str | Path | None = None) -> tuple[Discovery, Split, list[str]]:  # fmt: skip
    """Discover the dataset's pairs and make the split, before any image is decoded: a pair that
    turns out unreadable drops out of its part and moves no other case between parts, so ``train``
    and ``pretrain`` get the same split from the same name and seed."""
    data = DataConfig.from_dict(data)
    if not data.dataset or not data.data_root:
        raise NexnetError("name the data: --dataset NAME --data-root PATH")
    adapter = get_adapter(data.dataset)
    opts = {"mask_suffix": data.mask_suffix} if data.mask_suffix is not None else {}
    found = adapter.discover(Path(data.data_root), **opts)
    if found.problems and not data.skip_bad:
        more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
        raise NexnetError(f"{found.problems[0]}{more}; run check-data, or pass --skip-bad")
    name = split_override or data.split or adapter.default_split
    split = build_split(data.dataset, found, str(name), int(data.seed))
    return found, split, list(found.problems)


def prepare_data(data: DataConfig | dict, split_override: str | Path | None = None,
                 made: tuple[Discovery, Split, list[str]] | None = None) -> RunData:  # fmt: skip
    """Discover the dataset, make the split and build (or read) the array cache. ``made``: what
    ``discover_and_split`` already returned for this config, so that it is not done twice."""
    data = DataConfig.from_dict(data)
    found, split, warnings = made if made is not None else discover_and_split(data, split_override)
    warnings = list(warnings)
    arrays = build_arrays(found.pairs, int(data.image_size), data.workers, bool(data.skip_bad))
    warnings += [f.error for f in arrays.facts.values() if f.error]
    readable = set(arrays.ids)
    found.pairs = [p for p in found.pairs if p.id in readable]
    readable_hashes = {i: f.pixel_hash for i, f in arrays.facts.items() if not f.error and f.pixel_hash}
    warnings += cross_part_duplicates(split, readable_hashes)  # unreadable pairs are not images alike
    return RunData(found, split, arrays, warnings)
