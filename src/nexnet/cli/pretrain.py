"""``nexnet pretrain``: the SSL denoising autoencoder on training images."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import add_data_flags, csv_list


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    pt = sub.add_parser(
        "pretrain", help="pretrain the SSL denoising autoencoder on training images",
        description="Train the MaSA U-Net denoising autoencoder on the training part of each dataset's split "
        "(never its validation or test images). Loss 0.7 MSE + 0.2 (1-SSIM) + 0.1 perceptual (with "
        "--vgg-weights; without, 0.78 MSE + 0.22 (1-SSIM)).",
    )  # fmt: skip
    add_data_flags(pt, required=False, several=True, split_help="whose training part to use (default: each "
                   "dataset's usual split)", split_seed_default=None, split_seed_help="as train's; fine-tuning on "
                   "this checkpoint needs the same --split and --split-seed", pair_flags=False)  # fmt: skip
    pt.add_argument("--out", required=True)
    pt.add_argument("--epochs", type=int, default=None, help="default 100")
    pt.add_argument("--batch-size", type=int, default=None, help="default 16")
    pt.add_argument("--image-size", type=int, default=None, help="a multiple of 32; default 224")
    pt.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    pt.add_argument("--noise", type=float, default=None, help="Gaussian noise sigma on [0, 1] images (default 0.1)")
    pt.add_argument("--vgg-weights", default=None, help="local VGG16 weights (.safetensors or torchvision .pth)")
    pt.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    pt.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    pt.add_argument("--max-minutes", type=float, default=None)
    pt.add_argument("--resume", action="store_true")
    pt.add_argument("--quiet", action="store_true")
    return pt


RESUMABLE = ("epochs", "max_minutes", "device", "workers", "data_roots")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..training import PRETRAIN_DEFAULTS, RunFolder, pretrain, refuse_changes_on_resume

    out = Path(args.out)
    flags = {"datasets": csv_list(args.dataset) if args.dataset else None,
             "data_roots": [str(Path(r).resolve()) for r in csv_list(args.data_root)] if args.data_root else None,
             "split": args.split, "seed": args.seed, "split_seed": args.split_seed, "image_size": args.image_size,
             "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "noise": args.noise,
             "vgg_weights": args.vgg_weights, "device": args.device, "max_minutes": args.max_minutes,
             "workers": args.workers}  # fmt: skip
    asked = {k: v for k, v in flags.items() if v is not None}
    if args.resume:
        cfg = RunFolder(out).read_config()
        if "datasets" not in cfg:
            raise NexnetError(f"--resume: {out} holds a training run's config.yaml, not a pretraining run's; "
                              "resume it with nexnet train")  # fmt: skip
        refuse_changes_on_resume(cfg, asked, out, RESUMABLE)
        cfg.update({k: v for k, v in asked.items() if k in RESUMABLE})
    else:
        if not args.dataset or not args.data_root:
            raise NexnetError("name the data: --dataset NAME[,NAME] --data-root PATH[,PATH]")
        cfg = {**PRETRAIN_DEFAULTS, **asked}
    pretrain(cfg, out, resume=args.resume, quiet=args.quiet)
    return 0
