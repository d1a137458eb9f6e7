"""NExNet Seg against UNet: batch-1 inference latency at 224 px, measured side by side in one run.

    python benchmarks/bench_inference.py [--model nexnet_seg] [--reference unet] [--size 224] [--rounds 5]

The two models are timed in alternating rounds (median of each) so that machine load hits both.
Target on CPU: NExNet Seg / UNet <= 0.45.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import median_time

import nexnet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="nexnet_seg")
    p.add_argument("--reference", default="unet")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    args = p.parse_args()
    dev = torch.device(args.device)
    x = torch.rand(1, 3, args.size, args.size, device=dev)
    models = {n: nexnet.create_model(n).to(dev).eval() for n in (args.model, args.reference)}
    times: dict[str, list[float]] = {n: [] for n in models}
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if args.amp else torch.autocast(dev.type, enabled=False)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def run(m):  # noqa: ANN001, ANN202
        m(x)
        sync()

    with torch.inference_mode(), ctx:
        for _ in range(args.rounds):
            for name, m in models.items():
                times[name].append(median_time(lambda m=m: run(m), repeats=3))
    med = {n: statistics.median(t) for n, t in times.items()}
    print(f"torch {torch.__version__}, {dev}, {torch.get_num_threads()} threads, batch 1, {args.size}px, "
          f"amp {'bf16' if args.amp else 'off'}, median of {args.rounds} rounds x 3")  # fmt: skip
    for n in models:
        print(f"{n:<14} {med[n] * 1e3:9.1f} ms")
    print(f"{args.model} / {args.reference}: {med[args.model] / med[args.reference]:.3f} (target <= 0.45)")


if __name__ == "__main__":
    main()
