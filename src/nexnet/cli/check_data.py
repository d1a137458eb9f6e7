"""``nexnet check-data``: decode a dataset once and report what training would see."""

from __future__ import annotations

import argparse

from .flags import add_data_flags


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    c = sub.add_parser(
        "check-data", help="report pairs, sizes, mask values, splits and problems of a dataset",
        description="Decode every pair once and report what a training run would see. Exits 1, "
        "with one line per problem, when the data cannot be used.",
    )  # fmt: skip
    add_data_flags(c, seed_alias=True)
    c.add_argument("--split-out", metavar="FILE", help="also write the split as JSON")
    return c


def run(args: argparse.Namespace) -> int:
    from ..data.check import check_dataset, format_report
    from ..data.discovery import source_folders
    from ..outputs import refuse_foreign_json, refuse_inside_sources

    if args.split_out:  # before anything is decoded: never into the data, never over a file of the user's
        refuse_inside_sources(
            args.split_out, "--split-out", source_folders("--data-root", args.data_root, besides=[args.split_out])
        )
        refuse_foreign_json(args.split_out, "--split-out", "train", flag_is_the_file=True)

    report, split = check_dataset(
        args.dataset, args.data_root, args.split, args.split_seed, args.skip_bad, args.mask_suffix, args.workers
    )
    print(format_report(report))
    if split is not None and args.split_out:
        split.save(args.split_out)
        print(f"wrote {args.split_out}")
    return 0 if report.usable else 1
