"""CVC-ClinicDB's own splits, video-grouped ones above all: every frame of one video in one part.

Its 612 frames come from 29 colonoscopy videos, and neighbouring frames of a video are near
twins. A random frame split (PraNet's ``pranet``) puts twins on both sides; ``sequence`` and
``seqfold:K/N`` split whole videos instead, from the published frame-to-sequence ranges shipped in
``split_lists/cvc_clinicdb_sequences.txt``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..errors import DataError
from .split_tools import Parts, from_list, parse_kfold, shipped_list

# PraNet's test share (62 of 612 frames), and the share of training frames carved for validation.
TEST_SHARE, VAL_SHARE = 62 / 612, 0.1


def sequence_ranges() -> list[tuple[int, int]]:
    """``(first, last)`` frame of each sequence, 1-based and inclusive, in frame order."""
    text = resources.files("nexnet.data").joinpath("split_lists", "cvc_clinicdb_sequences.txt").read_text()
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [(int(a), int(b)) for a, b in rows]


def sequence_of(ids: list[str]) -> dict[str, int]:
    """Each case id (a frame number, as CVC-ClinicDB names its files) -> its sequence, 1 to 29."""
    ranges = sequence_ranges()
    out = {}
    for case in ids:
        frame = int(case) if case.isdigit() else -1
        seq = next((k for k, (a, b) in enumerate(ranges, 1) if a <= frame <= b), None)
        if seq is None:
            raise DataError(f"cvc_clinicdb: case {case!r} is not a frame number 1..{ranges[-1][1]}, so its video "
                            "is unknown; use the pranet or seeded split for renamed files")  # fmt: skip
        out[case] = seq
    return out


def _take(order: list[int], sizes: dict[int, int], target: float) -> tuple[list[int], list[int]]:
    """Whole sequences from the front of ``order`` until they hold at least ``target`` frames."""
    taken, frames = [], 0
    for seq in order:
        if frames >= target:
            break
        taken.append(seq)
        frames += sizes[seq]
    return taken, [s for s in order if s not in taken]


def sequence_split(ids: list[str], name: str, seed: int, folds: tuple[int, int] | None = None
                   ) -> tuple[list[str], list[str], list[str]]:  # fmt: skip
    """Train, val and test case ids with whole sequences in each part: ``sequence`` takes a seeded
    set of videos holding about PraNet's 62/612 share of frames as test; ``folds`` ``(K, N)`` takes
    fold N of K (videos cut into K seeded groups) instead. Validation: about 10% of the remaining
    frames, again whole videos, with the same seed."""
    seq = sequence_of(ids)
    sizes = {s: list(seq.values()).count(s) for s in sorted(set(seq.values()))}
    order = [int(s) for s in np.random.default_rng(seed).permutation(sorted(sizes))]
    if folds is None:
        test_seqs, rest = _take(order, sizes, TEST_SHARE * len(ids))
    else:
        k, n = folds
        if k > len(order):
            raise DataError(f"split {name!r}: only {len(order)} videos to cut into {k} folds")
        test_seqs = [int(s) for s in np.array_split(np.array(order), k)[n - 1]]
        rest = [s for s in order if s not in test_seqs]
    val_seqs, _ = _take(rest, sizes, VAL_SHARE * sum(sizes[s] for s in rest))
    part = {s: "test" if s in test_seqs else "val" if s in val_seqs else "train" for s in sizes}
    return tuple(sorted(i for i in ids if part[seq[i]] == p) for p in ("train", "val", "test"))  # type: ignore[return-value]


TWIN_NOTE = ("frames of one video land on both sides of this frame-level split, so test frames have near-twins "
             "in training and scores are flattered; the sequence and seqfold:K/N splits keep each video in one part "
             "and are the honest choice")  # fmt: skip


def cvc_splits(name: str, ids: list[str], seed: int, notes: list[str]) -> Parts | None:
    """CVC-ClinicDB's own splits (its adapter's hook): ``pranet`` (PraNet's shipped 62 test frames) and
    the video-grouped ones; every frame-level split, its own or a generic one, gets the near-twin note."""
    if name == "sequence" or name.startswith("seqfold:"):
        folds = parse_kfold(name) if name.startswith("seqfold:") else None
        notes.append(f"CVC-ClinicDB {name}: whole videos per part (29 sequences, published frame ranges), seed {seed}")
        return sequence_split(ids, name, seed, folds)
    notes.append(f"CVC-ClinicDB {name}: {TWIN_NOTE}")
    if name != "pranet":
        return None  # seeded, paper, kfold:K/N: the generic frame-level splits
    listed = shipped_list("cvc_clinicdb_pranet_test.txt")
    missing = sorted(set(listed) - set(ids), key=int)
    if missing:
        raise DataError(f"cvc_clinicdb pranet: {len(missing)} of PraNet's {len(listed)} test frames are not in "
                        f"the data (e.g. {missing[0]}); it needs all 612 frames: use sequence, seqfold:5/1 or "
                        "seeded")  # fmt: skip
    train, test = from_list(ids, listed, "cvc_clinicdb pranet")
    notes.append("CVC-ClinicDB pranet: PraNet's own 62 test frames (shipped list), the other frames train")
    return train, [], test
