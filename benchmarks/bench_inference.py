"""NExNet Seg against UNet: batch-1 inference latency at 224 px, measured side by side in one run.

    python benchmarks/bench_inference.py [--model nexnet_seg] [--reference unet] [--size 224] [--rounds 5]
        [--device cuda] [--amp] [--compile] [--system-malloc] [--default-layout]

Both models run as the ``nexnet`` command line runs them (channels_last where a model prefers it,
freed memory kept for reuse); the last two flags undo that. They are timed in alternating rounds
(median of each) so that machine load hits both. Target on CPU: NExNet Seg / UNet <= 0.45.
"""

from __future__ import annotations

import argparse

import torch
from common import add_runtime_flags, alternating_medians, apply_runtime, autocast, build, describe, synchronizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="nexnet_seg")
    p.add_argument("--reference", default="unet")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per round")
    add_runtime_flags(p)
    args = p.parse_args()
    dev = apply_runtime(args)
    sync = synchronizer(dev)
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    models = {n: build(n, dev, args).eval() for n in (args.model, args.reference)}

    def runner(m):  # noqa: ANN001, ANN202
        def run() -> None:
            m(x)
            sync()

        return run

    with torch.inference_mode(), autocast(dev, args.amp):
        for m in models.values():  # compile (if asked) and cache before any timing
            runner(m)()
        med = alternating_medians({n: runner(m) for n, m in models.items()}, args.rounds, args.repeats)
    print(f"{describe(args, dev)}; batch {args.batch}, {args.size}px, median of {args.rounds} rounds x {args.repeats}")
    for n in models:
        print(f"{n:<14} {med[n] * 1e3:9.2f} ms")
    print(f"{args.model} / {args.reference} latency: {med[args.model] / med[args.reference]:.3f} (target <= 0.45)")


if __name__ == "__main__":
    main()
