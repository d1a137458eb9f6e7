"""``nexnet datasets``: each adapter's name, layout and splits."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return sub.add_parser("datasets", help="dataset names and the folder layout each expects",
                          description="List the dataset names --dataset takes, the folder layout --data-root "
                          "must hold for each, and its splits.")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..data import ADAPTERS

    for a in ADAPTERS.values():
        print(f"{a.name:<13} {a.title}")
        print(f"{'':<13} layout: {a.layout}")
        names = ", ".join(a.folder_names) or "(the folder itself)"
        print(f"{'':<13} found under a data root as: {names}")
        print(f"{'':<13} splits: {', '.join(a.splits)} (default {a.default_split})")
    print("Every split can also be a split.json written by an earlier run.")
    return 0
