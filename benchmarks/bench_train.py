"""NExNet Seg against UNet: training images per second at 224 px, measured side by side in one run.

    python benchmarks/bench_train.py [--batch 4] [--rounds 3] [--size 224]
        [--device cuda] [--amp] [--compile] [--system-malloc] [--default-layout]

One step: forward, Dice+BCE loss, backward, gradient clipping, Adam, as ``nexnet train`` does it
(channels_last where a model prefers it, freed memory kept for reuse; the last two flags undo that).
The models take turns each round. Target: NExNet / UNet >= 2.0.
"""

from __future__ import annotations

import argparse

import torch
from common import add_runtime_flags, alternating_medians, apply_runtime, autocast, build, describe, synchronizer

from nexnet.training.losses import DiceBCELoss
from nexnet.training.optim import adam


def make_step(model, x, y, amp: bool = False):  # noqa: ANN001, ANN201
    """One optimizer step of ``model`` on ``(x, y)``, synchronised on CUDA."""
    opt = adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)  # as nexnet train builds it
    loss_fn = DiceBCELoss(3.0).to(x.device)
    sync = synchronizer(x.device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(x.device, amp):
            logits = model(x)
        loss_fn(logits.float(), y).backward()
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
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1, help="timed steps per round")
    add_runtime_flags(p)
    args = p.parse_args()
    dev = apply_runtime(args)
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    y = (torch.rand(args.batch, 1, args.size, args.size, device=dev) > 0.8).float()
    steps = {}
    for name in (args.model, args.reference):
        steps[name] = make_step(build(name, dev, args).train(), x, y, args.amp)
        steps[name]()  # compile (if asked), optimizer state, decay masks
    med = alternating_medians(steps, args.rounds, args.repeats)
    print(f"{describe(args, dev)}; batch {args.batch}, {args.size}px, median of {args.rounds} rounds x {args.repeats}")
    for n, t in med.items():
        print(f"{n:<14} {args.batch / t:8.2f} images/s ({t * 1e3:.0f} ms/step)")
    ratio = med[args.reference] / med[args.model]
    print(f"{args.model} / {args.reference} training throughput: {ratio:.3f} (target >= 2.0)")


if __name__ == "__main__":
    main()
