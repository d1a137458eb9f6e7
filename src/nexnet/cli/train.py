"""``nexnet train``: a model on a dataset, resumable, with DDP under torchrun."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import add_data_flags


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    t = sub.add_parser(
        "train", help="train a registered model on a dataset",
        description="Train with the default recipe (configs/default.yaml) unless told otherwise; "
        "--config configs/paper_exact.yaml gives NExNet Seg's paper network and recipe, "
        "configs/paper_recipe.yaml the paper's recipe for any model. The run "
        "folder gets config.yaml, split.json, best/, last/, log.csv and curves.png. Under torchrun "
        "(python -m torch.distributed.run --nproc_per_node N -m nexnet train ...) it trains with DDP.",
    )  # fmt: skip
    t.add_argument("--model", default=None, help="registry name (default nexnet_seg); see 'nexnet models'")
    add_data_flags(t, required=False, split_seed_default=None)  # a --config may name the data instead
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--config", action="append", default=None,
                   help="YAML file (e.g. configs/paper_exact.yaml); repeatable, later files win")  # fmt: skip
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.lr=3e-4 --set model.gamma=rmt")  # fmt: skip
    t.add_argument("--epochs", type=int, default=None, help="default 250 (configs/default.yaml), or the --config's")
    t.add_argument("--batch-size", type=int, default=None, help="per process; default 16 (configs/default.yaml)")
    t.add_argument("--image-size", type=int, default=None,
                   help="square side in px, a multiple of 32 (16: UNet, UNet++, TransUNet); default 224")  # fmt: skip
    t.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="default auto: CUDA if present")
    t.add_argument("--amp", action="store_true", help="autocast: bf16 (or fp16 without bf16) on CUDA, bf16 on CPU: "
                   "on CPUs with AMX 1.75x the images/s for nexnet_seg, slower on CPUs without fast bf16 "
                   "(docs/performance.md)")  # fmt: skip
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward pass: +20%% images/s for nexnet_seg with --amp on an "
                        "H100, none on CPU; the first steps wait for the compiler")  # fmt: skip
    t.add_argument("--seed", type=int, default=None, help="training seed: weights, order, augmentation (default 0)")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="time budget: stop before an epoch would pass it; the cosine schedule spans it")  # fmt: skip
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last epoch, from any folder; with --data-root, on "
                        "data that moved (its split's cases must all be there)")  # fmt: skip
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--ssl-checkpoint", default=None,
                   help="a 'nexnet pretrain' run: fuse its encoder's embedding at the bottleneck")  # fmt: skip
    t.add_argument("--freeze-encoder", action="store_true", help="keep the SSL encoder's weights fixed")
    return t


# The config key each flag sets: the command line maps flags to keys, and errors name the flag.
FLAGS = {
    "model.name": "--model", "data.dataset": "--dataset", "data.data_root": "--data-root", "data.split": "--split",
    "data.seed": "--split-seed", "data.image_size": "--image-size", "data.mask_suffix": "--mask-suffix",
    "data.skip_bad": "--skip-bad", "data.workers": "--workers", "train.epochs": "--epochs",
    "train.batch_size": "--batch-size", "train.device": "--device", "train.amp": "--amp", "train.seed": "--seed",
    "train.max_minutes": "--max-minutes", "train.compile": "--compile",
}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..training import resolve_run, train

    if args.freeze_encoder and not args.ssl_checkpoint:
        raise NexnetError("--freeze-encoder goes with --ssl-checkpoint")
    ssl = None
    if args.ssl_checkpoint:  # after --set: the encoder named on the command line is the one fused
        ssl = {"model": {"ssl": True, "freeze_ssl": bool(args.freeze_encoder)},
               "train": {"ssl_checkpoint": args.ssl_checkpoint}}  # fmt: skip
    resolved = resolve_run(args.config, args.set, _flags(args), args.out, args.resume, ssl, FLAGS)
    train(resolved, args.out, resume=args.resume, quiet=args.quiet)
    return 0


def _flags(args: argparse.Namespace) -> dict:
    """The config keys the flags set (``section__key``; None: not given)."""
    values = {key: getattr(args, flag[2:].replace("-", "_")) for key, flag in FLAGS.items()}
    return {key.replace(".", "__"): None if value is False else value for key, value in values.items()}
