"""Achieved FLOP/s of a NExNet Seg training step against a large float32 matrix multiply, in one process.

    python benchmarks/bench_efficiency.py [--batch 4] [--size 224]

FLOPs of the step (forward and backward) are counted with FlopCounterMode under SDPA's MATH
backend; the step itself is timed with the default kernels. Target: ratio >= 0.6.
"""

from __future__ import annotations

import argparse

import torch
from bench_train import make_step
from common import median_time
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import nexnet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="nexnet_seg")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--matmul", type=int, default=2048, help="matrix size for the reference")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    dev = torch.device(args.device)
    n = args.matmul
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    mm_time = median_time(lambda: (a @ b, sync()), 5, warmup=2)
    mm_rate = 2 * n**3 / mm_time

    model = nexnet.create_model(args.model).to(dev).train()
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    y = (torch.rand(args.batch, 1, args.size, args.size, device=dev) > 0.8).float()
    step = make_step(model, x, y)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    step_time = median_time(step, args.steps, warmup=1)
    rate = flops / step_time
    print(f"torch {torch.__version__}, {dev}, {torch.get_num_threads()} threads")
    print(f"float32 {n}x{n} matmul: {mm_rate / 1e9:8.1f} GFLOP/s")
    print(f"{args.model} training step (batch {args.batch}, {args.size}px): {flops / 1e9:.1f} GFLOP in "
          f"{step_time * 1e3:.0f} ms = {rate / 1e9:.1f} GFLOP/s")  # fmt: skip
    print(f"efficiency (step / matmul): {rate / mm_rate:.3f} (target >= 0.6)")


if __name__ == "__main__":
    main()
