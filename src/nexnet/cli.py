"""The ``nexnet`` command line: one verb per step."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import NexnetError

Handler = Callable[[argparse.Namespace], int]


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_profile(args: argparse.Namespace) -> int:
    import torch

    from .io import atomic_write_json
    from .models import create_model, list_models
    from .profile import format_table, profile_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise NexnetError("--device cuda: no CUDA device is available; use --device cpu")
    names = list_models() if args.models == ["all"] else args.models
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        create_model(unknown[0])  # raises with the list of names and close matches
    rows = []
    for name in names:
        model = create_model(name)
        rows.append(
            profile_model(
                model, args.image_size, args.batch_size, args.device,
                warmup=args.warmup, repeats=args.repeats, latency=not args.no_latency,
                throughput_batch=0 if args.no_latency else args.throughput_batch,
            )
        )  # fmt: skip
        del model
    print(format_table(rows))
    if any(name.endswith("_ssl") for name in names):
        print(ssl_parameter_note())
    r = rows[0]
    print(
        f"input {args.image_size}x{args.image_size}, batch {args.batch_size} for latency "
        f"(median of {args.repeats} after {args.warmup} warm-up runs), peak memory of that forward pass, "
        f"images/s at batch {args.throughput_batch}; MACs/FLOPs per image, "
        f"counted with FlopCounterMode under the MATH attention backend; device {r['device']}, "
        f"{r['threads']} threads, torch {torch.__version__}"
    )
    if args.json:
        atomic_write_json(args.json, rows)
        print(f"wrote {args.json}")
    if args.markdown:
        from .io import atomic_write_text
        from .profile import format_markdown

        atomic_write_text(args.markdown, format_markdown(rows) + "\n")
        print(f"wrote {args.markdown}")
    return 0


def ssl_parameter_note() -> str:
    from .models import create_model
    from .profile import count_parameters

    fused, plain, ae = (create_model(n) for n in ("nexnet_seg_ssl", "nexnet_seg", "ssl_autoencoder"))
    enc = count_parameters(fused.ssl_encoder)
    seg = count_parameters(fused) - enc
    m = lambda n: f"{n / 1e6:.2f}M"  # noqa: E731
    return (
        f"nexnet_seg_ssl: {m(count_parameters(fused))}, every one used in the forward pass: the segmentation "
        f"network ({m(seg)}, of which {m(seg - count_parameters(plain))} "
        f"take the 1024-channel embedding at the bottleneck) plus the autoencoder's encoder ({m(enc)}). "
        f"The whole autoencoder is {m(count_parameters(ae))}; its decoder and MaSA side branches "
        f"({m(count_parameters(ae) - enc)}) run only in pretraining and are not part of the model."
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out=args.out, seconds=args.seconds)


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    for name in list_models(args.pattern):
        print(name)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import ADAPTERS

    for a in ADAPTERS.values():
        print(f"{a.name:<13} {a.title}")
        print(f"{'':<13} layout: {a.layout}")
        names = ", ".join(a.folder_names) or "(the folder itself)"
        print(f"{'':<13} found under a data root as: {names}")
        print(f"{'':<13} splits: {', '.join(a.splits)} (default {a.default_split})")
    print("Every split can also be a split.json written by an earlier run.")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from .data.check import check_dataset, format_report

    report, split = check_dataset(
        args.dataset, args.data_root, args.split, args.seed, args.skip_bad, args.mask_suffix, args.workers
    )
    print(format_report(report))
    if split is not None and args.split_out:
        split.save(args.split_out)
        print(f"wrote {args.split_out}")
    return 0 if report.usable else 1


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .engine.config import load_yaml, merge, resolve
    from .engine.trainer import train

    out = Path(args.out)
    if args.resume:
        if not (out / "config.yaml").is_file():
            raise NexnetError(f"--resume: {out} holds no config.yaml; start the run without --resume")
        cfg = load_yaml(out / "config.yaml")
        keep = {"train": {k: v for k, v in (("epochs", args.epochs), ("max_minutes", args.max_minutes),
                                             ("device", args.device)) if v is not None}}  # fmt: skip
        cfg = merge(cfg, keep)
    else:
        cfg = resolve(
            args.config, args.set,
            model__name=args.model, data__dataset=args.dataset, data__data_root=args.data_root,
            data__split=args.split, data__seed=args.seed, data__image_size=args.image_size,
            data__mask_suffix=args.mask_suffix, data__skip_bad=args.skip_bad or None,
            data__workers=args.workers, train__epochs=args.epochs, train__batch_size=args.batch_size,
            train__device=args.device, train__amp=args.amp or None, train__seed=args.seed,
            train__max_minutes=args.max_minutes,
        )  # fmt: skip
        if args.ssl_checkpoint:
            cfg = merge(cfg, {"model": {"ssl": True, "freeze_ssl": bool(args.freeze_encoder)},
                              "train": {"ssl_checkpoint": str(args.ssl_checkpoint)}})  # fmt: skip
        elif args.freeze_encoder:
            raise NexnetError("--freeze-encoder goes with --ssl-checkpoint")
    train(cfg, out, resume=args.resume, quiet=args.quiet)
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .engine.config import load_yaml
    from .engine.pretrain import PRETRAIN_DEFAULTS, pretrain

    out = Path(args.out)
    if args.resume:
        if not (out / "config.yaml").is_file():
            raise NexnetError(f"--resume: {out} holds no config.yaml; start the run without --resume")
        cfg = load_yaml(out / "config.yaml")
        if args.epochs:
            cfg["epochs"] = args.epochs
    else:
        if not args.dataset or not args.data_root:
            raise NexnetError("name the data: --dataset NAME[,NAME] --data-root PATH[,PATH]")
        flags = {"datasets": _csv(args.dataset), "data_roots": _csv(args.data_root), "split": args.split,
                 "seed": args.seed, "image_size": args.image_size, "epochs": args.epochs,
                 "batch_size": args.batch_size, "lr": args.lr, "noise": args.noise,
                 "vgg_weights": args.vgg_weights, "device": args.device, "max_minutes": args.max_minutes,
                 "workers": args.workers}  # fmt: skip
        cfg = {**PRETRAIN_DEFAULTS, **{k: v for k, v in flags.items() if v is not None}}
    pretrain(cfg, out, resume=args.resume, quiet=args.quiet)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .engine.evaluate import evaluate

    evaluate(args.checkpoint, args.dataset, args.data_root, args.split, args.subset, args.threshold,
             args.tta, args.protocol, args.out or args.checkpoint, args.device)  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .engine.predict import predict

    result = predict(args.checkpoint, args.input, args.out, args.overlay, args.gt, args.tta, args.device)
    return 1 if result["failed"] else 0


def cmd_score(args: argparse.Namespace) -> int:
    from .engine.predict import score

    score(args.pred, args.gt, args.out or args.pred)
    return 0


def add_data_flags(p: argparse.ArgumentParser, split_required: bool = False) -> None:
    """The flags every data-reading verb shares."""
    p.add_argument("--dataset", required=True, help="adapter name: see 'nexnet datasets'")
    p.add_argument("--data-root", required=True, help="the dataset folder as downloaded, or a folder holding it")
    p.add_argument("--split", required=split_required, default=None,
                   help="official, pranet, medico2020, paper, kfold:K/N, seeded, or a split.json "
                        "(default: the dataset's usual split)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed for seeded splits and carved validation")
    p.add_argument("--mask-suffix", default=None, help="folder adapter: mask name suffix, e.g. _segmentation")
    p.add_argument("--skip-bad", action="store_true", help="leave unreadable pairs out and list them")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: up to 4)")


def _add_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="parameters, GMACs/GFLOPs and latency of registered models",
        description="Count parameters and multiply-accumulates (attention included) and time the "
        "forward pass of one or more registered models on a random input.",
    )
    p.add_argument("--models", type=_csv, default=["nexnet_seg"],
                   help="comma-separated registry names, or 'all' (default: nexnet_seg)")  # fmt: skip
    p.add_argument("--image-size", type=int, default=224, help="square input size (default 224)")
    p.add_argument("--batch-size", type=int, default=1, help="batch for the latency (default 1)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--no-latency", action="store_true", help="count parameters and MACs only")
    p.add_argument("--throughput-batch", type=int, default=16, help="batch for images/s (0: skip; default 16)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write a markdown table (the paper's Table 4 shape)")
    p.set_defaults(func=cmd_profile)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="nexnet",
        description="NExNet Seg and baselines for medical image segmentation.",
        epilog="Run 'nexnet VERB --help' for the flags of one step.",
    )
    parser.add_argument("--version", action="version", version=f"nexnet-seg {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    d = sub.add_parser("demo", help="a small end-to-end run that needs no data",
                       description="Build NExNet Seg and run it on a synthetic image.")  # fmt: skip
    d.add_argument("--out", default="demo", help="output folder (default: demo)")
    d.add_argument("--seconds", type=float, default=120, help="training budget in seconds")
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("models", help="list registered model names")
    m.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'segformer*'")
    m.set_defaults(func=cmd_models)

    _add_profile(sub)

    ds = sub.add_parser("datasets", help="dataset names and the folder layout each expects")
    ds.set_defaults(func=cmd_datasets)

    c = sub.add_parser(
        "check-data", help="report pairs, sizes, mask values, splits and problems of a dataset",
        description="Decode every pair once and report what a training run would see. Exits 1, "
        "with one line per problem, when the data cannot be used.",
    )  # fmt: skip
    add_data_flags(c)
    c.add_argument("--split-out", metavar="FILE", help="also write the split as JSON")
    c.set_defaults(func=cmd_check_data)
    _add_engine(sub)
    return parser


def _add_engine(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train", help="train a registered model on a dataset",
        description="Train with the paper's recipe (configs/paper.yaml) unless told otherwise. The run "
        "folder gets config.yaml, split.json, best/, last/, log.csv and curves.png. Under torchrun "
        "(python -m torch.distributed.run --nproc_per_node N -m nexnet train ...) it trains with DDP.",
    )  # fmt: skip
    t.add_argument("--model", default=None, help="registry name (default nexnet_seg); see 'nexnet models'")
    t.add_argument("--dataset", default=None, help="adapter name: see 'nexnet datasets'")
    t.add_argument("--data-root", default=None, help="the dataset folder as downloaded")
    t.add_argument("--split", default=None, help="official, pranet, medico2020, paper, kfold:K/N, seeded or FILE")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--config", default=None, help="YAML file (e.g. configs/paper.yaml)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.lr=3e-4 --set model.gamma=rmt")  # fmt: skip
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--image-size", type=int, default=None)
    t.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    t.add_argument("--amp", action="store_true", help="autocast: bf16 (or fp16 without bf16) on CUDA, bf16 on CPU")
    t.add_argument("--seed", type=int, default=None, help="training and split seed")
    t.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    t.add_argument("--mask-suffix", default=None)
    t.add_argument("--skip-bad", action="store_true", help="leave unreadable pairs out")
    t.add_argument("--workers", type=int, default=None, help="decoding processes")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--ssl-checkpoint", default=None,
                   help="a 'nexnet pretrain' run: fuse its encoder's embedding at the bottleneck")  # fmt: skip
    t.add_argument("--freeze-encoder", action="store_true", help="keep the SSL encoder's weights fixed")
    t.set_defaults(func=cmd_train)

    pt = sub.add_parser(
        "pretrain", help="pretrain the SSL denoising autoencoder on training images",
        description="Train the MaSA U-Net denoising autoencoder on the training part of each dataset's split "
        "(never its validation or test images). Loss 0.7 MSE + 0.2 (1-SSIM) + 0.1 perceptual (with "
        "--vgg-weights; without, 0.78 MSE + 0.22 (1-SSIM)).",
    )  # fmt: skip
    pt.add_argument("--dataset", default=None, help="one or more adapter names, comma-separated")
    pt.add_argument("--data-root", default=None, help="one folder per dataset, comma-separated")
    pt.add_argument("--split", default=None, help="whose training part to use (default: each dataset's usual)")
    pt.add_argument("--out", required=True)
    pt.add_argument("--epochs", type=int, default=None)
    pt.add_argument("--batch-size", type=int, default=None)
    pt.add_argument("--image-size", type=int, default=None)
    pt.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    pt.add_argument("--noise", type=float, default=None, help="Gaussian noise sigma on [0, 1] images (default 0.1)")
    pt.add_argument("--vgg-weights", default=None, help="local VGG16 weights (.safetensors or torchvision .pth)")
    pt.add_argument("--seed", type=int, default=None)
    pt.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    pt.add_argument("--max-minutes", type=float, default=None)
    pt.add_argument("--workers", type=int, default=None)
    pt.add_argument("--resume", action="store_true")
    pt.add_argument("--quiet", action="store_true")
    pt.set_defaults(func=cmd_pretrain)

    e = sub.add_parser("evaluate", help="score a checkpoint on a dataset split (summary.json)",
                       description="Per-case Dice, IoU, precision, recall, specificity, accuracy and HD95 "
                       "at each image's original size, honest protocol (or the authors', labelled).")  # fmt: skip
    e.add_argument("--checkpoint", "--model_path", required=True, help="a best/ folder (save_pretrained)")
    e.add_argument("--dataset", required=True)
    e.add_argument("--data-root", required=True)
    e.add_argument("--split", default=None, help="default: the training run's split.json when beside it")
    e.add_argument("--subset", choices=["test", "val"], default="test")
    e.add_argument("--threshold", default="0.5", help="a number, or 'val' to choose it on the validation split")
    e.add_argument("--tta", action="store_true", help="average probabilities over flips")
    e.add_argument("--protocol", choices=["honest", "paper"], default="honest",
                   help="paper: also the authors' batch-pooled, test-thresholded Dice, labelled")  # fmt: skip
    e.add_argument("--out", default=None, help="folder for summary.json (default: the checkpoint folder)")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="masks (and overlays) for an image or a folder of images")
    p.add_argument("--checkpoint", "--model_path", required=True)
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder (never the input folder)")
    p.add_argument("--overlay", action="store_true", help="also write contour overlays")
    p.add_argument("--gt", default=None, help="ground-truth mask folder, drawn in blue on overlays")
    p.add_argument("--tta", action="store_true")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_predict)

    s = sub.add_parser("score", help="score any folder of predicted masks against ground truth")
    s.add_argument("--pred", required=True, help="predicted masks (0/255, 0/1 or probability PNGs)")
    s.add_argument("--gt", required=True, help="ground-truth masks, paired by file stem")
    s.add_argument("--out", default=None, help="folder for summary.json (default: --pred)")
    s.set_defaults(func=cmd_score)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NexnetError as e:
        print(f"nexnet {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nexnet {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
