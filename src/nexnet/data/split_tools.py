"""Pieces a dataset's own splits are made of: the shipped case lists, K/N fold names, the parts."""

from __future__ import annotations

from importlib import resources

from ..errors import DataError

Parts = tuple[list[str], list[str], list[str]]  # train, val (empty: carve one from train), test


def shipped_list(name: str) -> list[str]:
    text = resources.files("nexnet.data").joinpath("split_lists", name).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def from_list(ids: list[str], test_ids: list[str], what: str) -> tuple[list[str], list[str]]:
    test_set = set(test_ids)
    missing = sorted(test_set - set(ids))
    if missing:
        raise DataError(f"{what}: {len(missing)} listed test cases are not in the data (e.g. {missing[0]})")
    return [i for i in ids if i not in test_set], sorted(test_set)


def parse_kfold(name: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in name.split(":", 1)[1].split("/"))
    except ValueError:
        kind = name.split(":", 1)[0]
        raise DataError(f"split {name!r}: write {kind}:K/N, e.g. {kind}:5/1 for fold 1 of 5") from None
    if not (k >= 2 and 1 <= n <= k):
        raise DataError(f"split {name!r}: need K >= 2 and 1 <= N <= K")
    return k, n
