"""Decomposed against full Manhattan self-attention: time and peak memory, in one run.

    python benchmarks/bench_masa.py [--sizes 28,56,112] [--channels 64] [--repeats 5]

Time: median forward pass (inference mode, batch 1) after a warm-up that also caches the decay
masks, for the whole block (norm, projections, attention, LCE, residual: the parts both forms share
included) and for the token mixing alone (``mix(q, k, v)``: where the two forms differ). Memory: peak
resident memory added by one forward pass of the block, in a fresh process, and separately the
cached decay masks, which the full form holds per map size: ``heads x (HW)^2`` floats.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from common import median_time, peak_memory_in_child

from nexnet.models import ManhattanSelfAttention
from nexnet.profile import peak_extra_memory_mb


def memory_case(mode: str, size: int, channels: int) -> float | None:
    m = ManhattanSelfAttention(channels, mode=mode).eval()
    x = torch.randn(1, channels, size, size)
    with torch.inference_mode():
        m(x)  # warm-up: caches the decay masks
        return peak_extra_memory_mb(lambda: m(x))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--memory-case", nargs=3, metavar=("MODE", "SIZE", "CHANNELS"), help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="28,56,112")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.memory_case:
        mode, size, channels = args.memory_case
        print(memory_case(mode, int(size), int(channels)))
        return
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, "
          f"{args.channels} channels, batch 1, median of {args.repeats}")  # fmt: skip
    head = (f"{'size':>5} {'block: full ms':>15} {'decomp ms':>10} {'speed-up':>9} {'mixing: full ms':>16} "
            f"{'decomp ms':>10} {'speed-up':>9} {'full MiB':>9} {'decomp MiB':>11} {'masks: full MiB':>16} "
            f"{'decomp MiB':>11}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    for size in [int(s) for s in args.sizes.split(",")]:
        x = torch.randn(1, args.channels, size, size)
        row = {}
        for mode in ("full", "decomposed"):
            m = ManhattanSelfAttention(args.channels, mode=mode).eval()
            qkv = [torch.randn(1, size, size, m.heads, m.head_dim) for _ in range(3)]
            with torch.inference_mode():
                block = median_time(partial(m, x), args.repeats)
                mixing = median_time(partial(m.mix, *qkv), args.repeats)
            mem = peak_memory_in_child(__file__, mode, str(size), str(args.channels))
            masks = sum(t.numel() * t.element_size() for t in m._masks.values()) / 2**20
            row[mode] = (block, mixing, mem, masks)
        (bf, xf, mf, kf), (bd, xd, md, kd) = row["full"], row["decomposed"]
        fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"  # noqa: E731
        print(f"{size:>5} {bf * 1e3:15.2f} {bd * 1e3:10.2f} {bf / bd:8.1f}x {xf * 1e3:16.2f} {xd * 1e3:10.2f} "
              f"{xf / xd:8.1f}x {fmt(mf):>9} {fmt(md):>11} {kf:16.1f} {kd:11.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
