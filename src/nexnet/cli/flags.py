"""What several verbs share: the data flags, the split-part flags, help texts and small helpers."""

from __future__ import annotations

import argparse

from ..errors import NexnetError

SPLIT_HELP = ("official, pranet, medico2020, paper, kfold:K/N, seeded, or a split.json "
              "(default: the dataset's usual split)")  # fmt: skip
SPLIT_SEED_HELP = (
    "seed of the seeded, kfold and CVC pranet test parts and of the carved validation part "
    "(default 0); apart from --seed, so that a multi-seed study keeps its test and val sets"
)
NO_GRAPHS_HELP = (
    "on CUDA, run the network eagerly instead of replaying captured CUDA graphs "
    "(default: graphs on CUDA; the CPU always runs eagerly)"
)
AMP_INFERENCE_HELP = (
    "bf16 autocast (fp16 on CUDA without bf16): on CPUs with AMX 1.85x faster for nexnet_seg, "
    "slower on CPUs without fast bf16; masks can differ from float32 at the edges"
)


def csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_data_flags(
    p: argparse.ArgumentParser,
    *,
    required: bool = True,
    several: bool = False,
    split_help: str = SPLIT_HELP,
    split_seed_help: str = SPLIT_SEED_HELP,
    split_seed_default: int | None = 0,
    seed_alias: bool = False,
    pair_flags: bool = True,
    workers: bool = True,
) -> None:
    """The flags of every verb that reads a dataset: ``--dataset``, ``--data-root``, ``--split`` and
    ``--split-seed``; with ``pair_flags``, ``--mask-suffix`` and ``--skip-bad``; with ``workers``,
    ``--workers``. ``several``: comma-separated lists; ``seed_alias``: ``--seed`` means ``--split-seed``
    (check-data, which has no training seed)."""
    names = "one or more adapter names, comma-separated" if several else "adapter name"
    roots = "one folder per dataset, comma-separated" if several else "the dataset folder as downloaded"
    p.add_argument("--dataset", required=required, default=None, help=f"{names}: see 'nexnet datasets'")
    p.add_argument("--data-root", required=required, default=None, help=f"{roots}, or a folder holding it")
    p.add_argument("--split", default=None, help=split_help)
    seed_names = ["--split-seed", "--seed"] if seed_alias else ["--split-seed"]
    p.add_argument(*seed_names, dest="split_seed", type=int, default=split_seed_default, help=split_seed_help)
    if pair_flags:
        p.add_argument("--mask-suffix", default=None, help="folder adapter: mask name suffix, e.g. _segmentation")
        p.add_argument("--skip-bad", action="store_true", help="leave unreadable pairs out and list them")
    if workers:
        p.add_argument("--workers", type=int, default=None, help="decoding processes (default: up to 4)")


def add_part_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--split-file", default=None, metavar="SPLIT_JSON", help=what)
    p.add_argument("--subset", choices=["test", "val", "train"], default="test",
                   help="with --split-file: which part (default test)")  # fmt: skip


def checkpoint_with_note(path: str) -> str:
    """A run folder stands for its best/ checkpoint, with a note saying so."""
    from ..models.base import checkpoint_folder

    folder, note = checkpoint_folder(path)
    if note:
        print(note)
    return str(folder)


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless it is unset (None, False) or the help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default in (None, False, [], argparse.SUPPRESS)
        if not action.option_strings or unset or "default" in text:
            return text
        return f"{text} (default: {action.default})".strip()


THREADS_HELP = ("torch CPU threads (default: torch's, one per core); on a shared machine fewer threads run "
                "faster, and --threads 1 lets two commands share a 2-core machine evenly")  # fmt: skip


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    """``--threads N`` (applied by ``nexnet.cli.main`` before the verb runs)."""
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


def set_threads(threads: int | None) -> None:
    """``--threads``: torch's CPU threads for this process (None: torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise NexnetError(f"--threads {threads}: give a positive number of threads, e.g. --threads 1")
    import torch

    torch.set_num_threads(threads)
