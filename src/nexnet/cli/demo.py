"""``nexnet demo``: synthetic data, a two-minute training run, evaluation, predictions and a report."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    d = sub.add_parser("demo", help="a small end-to-end run that needs no data",
                       description="Generate 240 SYNTHETIC polyp-like images, train nexnet_seg_s on them for "
                       "about two minutes on the CPU, evaluate it on their test split, predict with overlays, "
                       "and write OUT/report.md. Synthetic data: it shows the pipeline works, no more.")  # fmt: skip
    d.add_argument("--out", default="demo", help="output folder (default: demo)")
    d.add_argument("--seconds", type=float, default=120, help="training budget in seconds (default 120)")
    return d


def run(args: argparse.Namespace) -> int:
    from ..recipes.demo import run_demo

    return run_demo(out=args.out, seconds=args.seconds)
