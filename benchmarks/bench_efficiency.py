"""Achieved FLOP/s of a NExNet Seg training step against a large matrix multiply, in one process.

    python benchmarks/bench_efficiency.py [--batch 4] [--size 224] [--device cuda] [--amp]

FLOPs of the step (forward and backward) are counted with FlopCounterMode under SDPA's MATH
backend, grouped convolutions' weight gradients per group (``nexnet.profile.flop_counter``); the
step itself is timed with the default kernels, as ``nexnet train`` runs it. The reference is an
N x N matrix product in the step's precision: float32, or bf16 under ``--amp`` (on CUDA, float32
products use TF32 only if torch allows it; cuDNN convolutions do by default).
Target: ratio >= 0.6.
"""

from __future__ import annotations

import argparse

import torch
from bench_train import make_step
from common import add_runtime_flags, apply_runtime, build, describe, median_time, synchronizer
from torch.nn.attention import SDPBackend, sdpa_kernel

from nexnet.profile import flop_counter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="nexnet_seg")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--matmul", type=int, default=2048, help="matrix size for the reference (CUDA: try 8192)")
    add_runtime_flags(p)
    args = p.parse_args()
    args.compile = False  # the FLOP counter needs the eager model
    dev = apply_runtime(args)
    sync = synchronizer(dev)
    n, dtype = args.matmul, torch.bfloat16 if args.amp else torch.float32
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    mm_time = median_time(lambda: (a @ b, sync()), 10, warmup=3)
    mm_rate = 2 * n**3 / mm_time

    model = build(args.model, dev, args).train()
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    y = (torch.rand(args.batch, 1, args.size, args.size, device=dev) > 0.8).float()
    step = make_step(model, x, y, args.amp)
    with sdpa_kernel(SDPBackend.MATH), flop_counter() as fc:
        step()
    flops = fc.get_total_flops()
    step_time = median_time(step, args.steps, warmup=1)
    rate = flops / step_time
    print(describe(args, dev))
    print(f"{str(dtype).removeprefix('torch.')} {n}x{n} matmul: {mm_rate / 1e9:10.1f} GFLOP/s")
    print(f"{args.model} training step (batch {args.batch}, {args.size}px): {flops / 1e9:.1f} GFLOP in "
          f"{step_time * 1e3:.1f} ms = {rate / 1e9:.1f} GFLOP/s")  # fmt: skip
    print(f"efficiency (step / matmul): {rate / mm_rate:.3f} (target >= 0.6)")


if __name__ == "__main__":
    main()
