"""Where commands may write: never into a folder of source data, never over a file they did not write."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from .errors import NexnetError

RUN_CONFIG = "config.yaml"  # a run's resolved recipe, at the top of its folder
TRAIN_DONE = "train_done.json"  # a run that trained to its end (reproduce skips it)
PRETRAIN_DONE = "pretrain_done.json"  # the same for a pretraining run
SUMMARY = "summary.json"  # an evaluation's or a scoring's per-case metrics
# Beside a checkpoint (and a run): the split it was trained on, and pixel hashes of the images it
# trained and was selected on.
SPLIT = "split.json"
SEEN = "seen_images.json"
# What nexnet writes into a run folder (train, pretrain, reproduce) or an output folder.
RUN_FILES = {RUN_CONFIG, SPLIT, "best", "last", "log.csv", "curves.png", "eval", TRAIN_DONE,
             "images.json", "recon.png", PRETRAIN_DONE, SUMMARY}  # fmt: skip
PREDICT_RECORD = "predict.json"  # marks a folder predict wrote, so a rerun may replace its masks
FRONTIER_RECORD = "frontier.json"  # a frontier's report, beside its runs/ and points/
DEPLOY_RECORD = "deploy.json"  # an OpenVINO export's record, beside its IR
# The records that say a folder is nexnet's output, not source data.
OUTPUT_RECORDS = (RUN_CONFIG, TRAIN_DONE, SUMMARY, PREDICT_RECORD, FRONTIER_RECORD, DEPLOY_RECORD)
# What a checkpoint folder holds (evaluate writes its summary.json there by default).
CHECKPOINT_FILES = {"model.safetensors", "config.json", SPLIT, SEEN, "state.json", "state.safetensors",
                    SUMMARY}  # fmt: skip


def _folder(path: Path) -> Path:
    return (path if path.is_dir() or not path.suffix else path.parent).resolve()


def refuse_inside_sources(out: str | os.PathLike, out_flag: str, sources: dict[str, str | os.PathLike | None]) -> None:
    """Refuse an output path that is, or lies inside, a source folder (``--input``, ``--gt``, ``--data-root``)."""
    dst = Path(out).resolve()
    for flag, src in sources.items():
        if src is None:
            continue
        folder = _folder(Path(src))
        if dst == folder or folder in dst.parents:
            raise NexnetError(f"{out_flag} {out}: is inside the {flag} folder {folder}; nexnet never writes "
                              f"into source data: choose an {out_flag} outside it")  # fmt: skip


def refuse_foreign_files(folder: str | os.PathLike, flag: str, ours: Iterable[str] | None = None,
                         ours_prefix: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Refuse a folder holding entries nexnet would not have written there (dotfiles aside)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NexnetError(f"{flag} {folder}: is a file; give a folder")
    if not folder.is_dir():
        return
    known = set(RUN_FILES if ours is None else ours)
    names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    foreign = sorted(n for n in names if n not in known and not n.startswith(ours_prefix))
    if foreign:
        raise NexnetError(f"{flag} {folder}: holds files nexnet did not write (e.g. {foreign[0]}); "
                          f"choose a new or empty {flag}")  # fmt: skip


def refuse_foreign_json(path: str | os.PathLike, flag: str, key: str, flag_is_the_file: bool = False) -> None:
    """Refuse to replace ``path`` unless it is a JSON file nexnet wrote (it holds ``key``).
    ``flag_is_the_file``: ``flag`` names ``path`` itself (``--split-out FILE``), not its folder."""
    path = Path(path)
    if not path.exists():
        return
    try:
        ours = key in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        ours = False
    if ours:
        return
    if flag_is_the_file:
        raise NexnetError(f"{flag} {path}: is a file that nexnet did not write; nexnet never replaces it: "
                          f"choose another {flag}")  # fmt: skip
    raise NexnetError(f"{flag} {path.parent}: already holds a {path.name} that nexnet did not write; "
                      f"choose another {flag}")  # fmt: skip
