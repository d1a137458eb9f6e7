"""``nexnet train``: a model on a dataset, resumable, with DDP under torchrun."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import NexnetError
from .flags import add_data_flags, refuse_changes_on_resume


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


RESUMABLE = ("train.epochs", "train.max_minutes", "train.device", "data.data_root")


def run(args: argparse.Namespace) -> int:
    from ..training import RunFolder, merge, train

    out = Path(args.out)
    if args.resume:
        saved = RunFolder(out).read_config()
        refuse_changes_on_resume(saved, _asked(args), out, RESUMABLE)
        keep = {"train": {k: v for k, v in (("epochs", args.epochs), ("max_minutes", args.max_minutes),
                                             ("device", args.device)) if v is not None}}  # fmt: skip
        if args.data_root:  # a moved dataset: its split.json's cases must all be there
            keep["data"] = {"data_root": str(Path(args.data_root).resolve())}
        cfg = merge(saved, keep)
    else:
        if args.freeze_encoder and not args.ssl_checkpoint:
            raise NexnetError("--freeze-encoder goes with --ssl-checkpoint")
        cfg = _resolved(args)
    train(cfg, out, resume=args.resume, quiet=args.quiet)
    return 0


def _flags(args: argparse.Namespace) -> dict:
    """The config keys the flags set (``section__key``; None: not given)."""
    return dict(
        model__name=args.model, data__dataset=args.dataset, data__data_root=args.data_root,
        data__split=args.split, data__seed=args.split_seed, data__image_size=args.image_size,
        data__mask_suffix=args.mask_suffix, data__skip_bad=args.skip_bad or None,
        data__workers=args.workers, train__epochs=args.epochs, train__batch_size=args.batch_size,
        train__device=args.device, train__amp=args.amp or None, train__seed=args.seed,
        train__max_minutes=args.max_minutes, train__compile=args.compile or None,
    )  # fmt: skip


def _resolved(args: argparse.Namespace):  # noqa: ANN202 - a RunConfig, imported lazily
    from ..training import resolve

    cfg = resolve(args.config, args.set, **_flags(args))
    if args.ssl_checkpoint:
        cfg = cfg.merged({"model": {"ssl": True, "freeze_ssl": bool(args.freeze_encoder)},
                          "train": {"ssl_checkpoint": str(Path(args.ssl_checkpoint).resolve())}})  # fmt: skip
    return cfg


def _asked(args: argparse.Namespace) -> dict:
    """What this command line sets, nested like a config: --config files, flags, --set, --ssl-checkpoint."""
    from ..training import load_yaml, parse_set

    asked: dict = {}
    for path in args.config or []:
        for section, values in load_yaml(path).items():
            asked.setdefault(section, {}).update(values if isinstance(values, dict) else {})
    for name, value in _flags(args).items():
        if value is not None:
            section, key = name.split("__", 1)
            asked.setdefault(section, {})[key] = value
    for section, values in parse_set(args.set).items():
        asked.setdefault(section, {}).update(values)
    if args.ssl_checkpoint:
        asked.setdefault("train", {})["ssl_checkpoint"] = str(Path(args.ssl_checkpoint).resolve())
        asked.setdefault("model", {}).update(ssl=True, freeze_ssl=bool(args.freeze_encoder))
    return asked
