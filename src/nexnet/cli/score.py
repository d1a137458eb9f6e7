"""``nexnet score``: any folder of masks against ground truth."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import add_part_flags


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    s = sub.add_parser("score", help="score any folder of predicted masks against ground truth",
                       description="Score a folder of predicted masks (from nexnet predict or any other tool) "
                       "against ground truth, pairing files by stem, and write summary.json: per-case metrics "
                       "(Dice, IoU, HD95 and more), their means, pixel-pooled Dice and IoU, and a bootstrap 95% "
                       "CI of the mean Dice. Each mask must have its ground truth's size.")  # fmt: skip
    s.add_argument("--pred", required=True, help="predicted masks (0/255, 0/1 or probability PNGs)")
    s.add_argument("--gt", required=True, help="ground-truth masks, paired by file stem")
    s.add_argument("--out", default=None, help="folder for summary.json (default: --pred)")
    add_part_flags(s, "score only the ground truth of one part of a split.json, e.g. runs/kvasir/split.json")
    s.add_argument("--ignore-missing", action="store_true",
                   help="leave out ground-truth masks that have no prediction (default: score them as empty "
                        "masks); either way summary.json counts and names them")  # fmt: skip
    return s


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..evaluation import score
    from ..outputs import PREDICT_RECORD

    same = Path(args.pred).resolve() == Path(args.gt).resolve()  # refused by score itself, in its words
    missing = not Path(args.pred).is_dir()  # score says so first, in its words
    if not args.out and not same and not missing and not (Path(args.pred) / PREDICT_RECORD).is_file():
        raise NexnetError(f"--pred {args.pred} was not written by nexnet predict, so summary.json does not go "
                          "there by default; give --out FOLDER")  # fmt: skip
    score(
        args.pred,
        args.gt,
        args.out or args.pred,
        ignore_missing=args.ignore_missing,
        split_file=args.split_file,
        subset=args.subset,
    )
    return 0
