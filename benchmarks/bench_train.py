"""NExNet Seg against UNet: training images per second at 224 px, measured side by side in one run.

    python benchmarks/bench_train.py [--batch 4] [--steps 3] [--size 224]

One step: forward, Dice+BCE loss, backward, gradient clipping, Adam. Target: NExNet / UNet >= 2.0.
"""

from __future__ import annotations

import argparse

import torch
from common import median_time

import nexnet
from nexnet.engine.losses import DiceBCELoss


def make_step(model, x, y):  # noqa: ANN001, ANN201
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    loss_fn = DiceBCELoss(3.0)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        sync()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="nexnet_seg")
    p.add_argument("--reference", default="unet")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    dev = torch.device(args.device)
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    y = (torch.rand(args.batch, 1, args.size, args.size, device=dev) > 0.8).float()
    rate = {}
    for name in (args.model, args.reference):
        model = nexnet.create_model(name).to(dev).train()
        rate[name] = args.batch / median_time(make_step(model, x, y), args.steps, warmup=1)
    print(f"torch {torch.__version__}, {dev}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.size}px, median of {args.steps} steps")  # fmt: skip
    for n, r in rate.items():
        print(f"{n:<14} {r:8.2f} images/s")
    print(f"{args.model} / {args.reference} training throughput: {rate[args.model] / rate[args.reference]:.3f} "
          "(target >= 2.0)")  # fmt: skip


if __name__ == "__main__":
    main()
