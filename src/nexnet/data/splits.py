"""Train/val/test splits: official, pranet, medico2020, paper, kfold:K/N, seeded, or a saved JSON."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_write_json
from .adapters import ADAPTERS
from .discovery import Discovery
from .split_tools import Parts, parse_kfold

VAL_FRACTION = 0.1
SEEDED_TEST_FRACTION = 0.2
PAPER_SEED = 101


@dataclass
class Split:
    """Case ids per part, plus how they were made (written as ``split.json`` with every run)."""

    dataset: str
    name: str
    seed: int
    train: list[str]
    val: list[str]
    test: list[str]
    notes: list[str] = field(default_factory=list)

    def parts(self) -> dict[str, list[str]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, asdict(self))

    def to_dict(self) -> dict:
        return asdict(self)

    def ids_sha256(self, part: str) -> str:
        """A fingerprint of one part's case ids (sorted, one per line)."""
        return hashlib.sha256("\n".join(sorted(self.parts()[part])).encode()).hexdigest()

    def record(self) -> dict:
        """What a saved model states about the split it was trained on (the ids are in split.json)."""
        return {"split": self.name, "split_seed": self.seed,
                "split_sha256": {part: self.ids_sha256(part) for part in ("train", "val")}}  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> Split:
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{k: data[k] for k in ("dataset", "name", "seed", "train", "val", "test")},
                       notes=data.get("notes", []))  # fmt: skip
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path}: not a split file written by nexnet ({e})") from None


def carve_val(train: list[str], seed: int, fraction: float = VAL_FRACTION) -> tuple[list[str], list[str]]:
    """A seeded ``fraction`` of ``train`` (rounded, at least one when train has two or more) as validation."""
    ids = sorted(train)
    n_val = max(1, round(fraction * len(ids))) if len(ids) > 1 else 0
    perm = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in perm[:n_val])
    rest = sorted(ids[i] for i in perm[n_val:])
    return rest, val


def sklearn_style_split(ids: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Train and test as scikit-learn's ``train_test_split(ids, test_size=f, random_state=seed)`` orders
    them: a ``RandomState(seed)`` permutation, the first ``ceil(f * n)`` as test."""
    n_test = math.ceil(test_fraction * len(ids))
    perm = np.random.RandomState(seed).permutation(len(ids))
    return [ids[i] for i in perm[n_test:]], [ids[i] for i in perm[:n_test]]


def build_split(dataset: str, found: Discovery, name: str, seed: int = 0) -> Split:
    """Make the named split of the pairs an adapter found."""
    if Path(name).suffix == ".json" and Path(name).is_file():
        return _saved_split(name, found)
    ids = sorted(p.id for p in found.pairs)
    if not ids:
        raise DataError(f"{dataset}: no usable pairs to split")
    adapter = ADAPTERS.get(dataset)
    if name == "official" and adapter is not None and adapter.official:
        name = adapter.official
    notes: list[str] = []
    own = adapter.own_splits(name, ids, seed, notes) if adapter is not None and adapter.own_splits else None
    parts = own or _generic_split(dataset, name, ids, found, seed, notes)
    train, val, test = parts
    if not val and len(train) > 1:
        train, val = carve_val(train, seed)
        notes.append(f"val: a seeded {VAL_FRACTION:.0%} of train (seed {seed})")
    return Split(dataset, name, seed, sorted(train), sorted(val), sorted(test), notes)


def _saved_split(path: str, found: Discovery) -> Split:
    """A ``split.json``, refused if it names cases the data lacks or puts a case in two parts."""
    split = Split.load(path)
    ids = {p.id for p in found.pairs}
    unknown = [i for part in split.parts().values() for i in part if i not in ids]
    if unknown:
        raise DataError(f"{path}: {len(unknown)} cases are not in the data (e.g. {unknown[0]})")
    if overlap := check_overlap(split):
        raise DataError(f"{path}: {len(overlap)} cases sit in two parts ({overlap[0]}); "
                        "each case belongs to one of train, val and test")  # fmt: skip
    return split


def _generic_split(dataset: str, name: str, ids: list[str], found: Discovery, seed: int, notes: list[str]) -> Parts:
    """official (the release's own parts), paper, kfold:K/N and seeded, for any dataset."""
    if name == "official":
        subsets = found.subsets()
        if set(subsets) <= {"all"}:
            raise DataError(f"{dataset} has no official split; use seeded, paper or kfold:K/N")
        train, val, test = subsets.get("train", []), subsets.get("val", []), subsets.get("test", [])
        notes += [f"the official {part} part is missing from the data root" for part, got in
                  (("train", train), ("test", test)) if not got]  # fmt: skip
        return train, val, test
    if name == "paper":
        train, test = sklearn_style_split(ids, 0.25, PAPER_SEED)
        train, val = sklearn_style_split(train, 0.2, PAPER_SEED)
        notes.append("paper: all pairs pooled, 75/25 train/test then 20% of train as val, seed 101, "
                     "scikit-learn's shuffling over sorted ids; no augmented copies in val")  # fmt: skip
        return train, val, test
    perm = np.random.default_rng(seed).permutation(len(ids))
    if name.startswith("kfold:"):
        k, n = parse_kfold(name)
        fold = set(np.array_split(perm, k)[n - 1].tolist())
        return [ids[i] for i in range(len(ids)) if i not in fold], [], [ids[i] for i in sorted(fold)]
    if name == "seeded":
        n_test = round(SEEDED_TEST_FRACTION * len(ids))
        return sorted(ids[i] for i in perm[n_test:]), [], sorted(ids[i] for i in perm[:n_test])
    raise DataError(f"split {name!r} does not apply to {dataset} (try official, pranet, medico2020, "
                    "paper, kfold:5/1, seeded, CVC's sequence or seqfold:5/1, or a split.json file)")  # fmt: skip


def check_overlap(split: Split) -> list[str]:
    """Ids that appear in more than one part (a bug or a hand-edited split file)."""
    seen: dict[str, str] = {}
    problems = []
    for part, ids in split.parts().items():
        for i in ids:
            if i in seen:
                problems.append(f"case {i} is in both {seen[i]} and {part}")
            seen[i] = part
    return problems


def cross_part_duplicates(split: Split, hashes: dict[str, str]) -> list[str]:
    """Warnings for pixel-identical images that sit in different parts of the split."""
    part_of = {i: part for part, ids in split.parts().items() for i in ids}
    groups: dict[str, list[str]] = {}
    for cid, h in hashes.items():
        if cid in part_of:
            groups.setdefault(h, []).append(cid)
    out = []
    for ids in groups.values():
        parts = {part_of[i] for i in ids}
        if len(parts) > 1:
            named = ", ".join(f"{i} ({part_of[i]})" for i in sorted(ids))
            out.append(f"identical images across parts: {named}")
    return out


def split_part(split_file: str | Path | None, subset: str) -> set[str] | None:
    """The case ids of one part (``train``, ``val`` or ``test``) of a ``split.json``; None without a file.

    Raises:
        DataError: the part is empty, or the file is not a split.
    """
    if split_file is None:
        return None
    ids = set(Split.load(split_file).parts()[subset])
    if not ids:
        raise DataError(f"--split-file {split_file}: its {subset} part is empty")
    return ids
