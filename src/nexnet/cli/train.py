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


RESUMABLE = ("train.epochs", "train.max_minutes", "train.device", "data.data_root", "data.workers")


def run(args: argparse.Namespace) -> int:
    from ..training import DEFAULTS, RunConfig, RunFolder, merge, train

    if args.freeze_encoder and not args.ssl_checkpoint:
        raise NexnetError("--freeze-encoder goes with --ssl-checkpoint")
    out = Path(args.out)
    asked = _asked(args)
    if args.resume:
        saved = RunFolder(out).read_run_config()
        refuse_changes_on_resume(saved.to_dict(), _as_built(saved, asked), out, RESUMABLE)
        cfg = saved.merged({section: {k: v for k, v in values.items() if f"{section}.{k}" in RESUMABLE}
                            for section, values in asked.items()})  # fmt: skip
    else:
        cfg = RunConfig.from_dict(merge(DEFAULTS, asked))  # as training.resolve does
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


def _asked(args: argparse.Namespace) -> dict:
    """What this command line sets, nested like a config, in ``resolve``'s order; --ssl-checkpoint last.
    Paths are made absolute, as a run records them."""
    from ..training.config import requested

    asked = requested(args.config, args.set, **_flags(args))
    if args.ssl_checkpoint:
        ssl = {"model": {"ssl": True, "freeze_ssl": bool(args.freeze_encoder)},
               "train": {"ssl_checkpoint": args.ssl_checkpoint}}  # fmt: skip
        asked = {section: {**asked.get(section, {}), **ssl.get(section, {})} for section in {*asked, *ssl}}
    return _absolute(asked)


def _absolute(asked: dict) -> dict:
    data, tc = asked.get("data", {}), asked.get("train", {})
    if data.get("data_root"):
        data["data_root"] = str(Path(data["data_root"]).resolve())
    if data.get("split") and Path(str(data["split"])).is_file():
        data["split"] = str(Path(data["split"]).resolve())
    if tc.get("ssl_checkpoint"):
        tc["ssl_checkpoint"] = str(Path(tc["ssl_checkpoint"]).resolve())
    return asked


def _as_built(saved, asked: dict) -> dict:  # noqa: ANN001 - a RunConfig, imported lazily
    """``asked`` with its model keys as the model would record them, built on the saved run's keywords
    (a form made custom by another keyword, defaults a release filled in)."""
    wanted = asked.get("model")
    if not wanted or wanted.get("name", saved.model_name) != saved.model_name:
        return asked
    from ..models import create_model

    try:
        kwargs = {k: v for k, v in wanted.items() if k != "name"}
        built = create_model(saved.model_name, **{**saved.model_kwargs(), **kwargs}).config
    except (TypeError, ValueError) as e:
        raise NexnetError(f"model: {e}") from None
    return {**asked, "model": {k: built.get(k, v) for k, v in wanted.items()}}
