"""What data a run reads: the ``data`` section of a run's config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import NexnetError


def checked_keys(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """``values`` if every key is a field of the dataclass ``cls``; else one line naming the first unknown."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise NexnetError(f"unknown config key '{section}.{unknown[0]}' (known: {', '.join(sorted(known))})")
    return values


@dataclass
class DataConfig:
    """The dataset (an adapter name and its folder), the split (a name, ``kfold:K/N`` or a split.json)
    and its seed, the network's input size, and how to decode."""

    dataset: str | None = None
    data_root: str | None = None
    split: str | None = None
    seed: int = 0  # the split's seed (--split-seed)
    image_size: int = 224
    mask_suffix: str | None = None
    skip_bad: bool = False
    workers: int | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any] | DataConfig) -> DataConfig:
        if isinstance(values, DataConfig):
            return values
        return cls(**checked_keys(cls, values, "data"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
