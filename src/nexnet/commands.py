"""The handlers of the ``nexnet`` verbs; the parser lives in ``cli.py``. Imports are lazy so that
``nexnet --help`` stays fast."""

from __future__ import annotations

import argparse

from .errors import NexnetError


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_profile(args: argparse.Namespace) -> int:
    import torch

    from .io import atomic_write_json
    from .models import create_model, list_models
    from .profile import format_table, profile_model, ssl_parameter_note
    from .training.config import check_count, check_image_size

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise NexnetError("--device cuda: no CUDA device is available; use --device cpu")
    names = list_models() if args.models == ["all"] else args.models
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        create_model(unknown[0])  # raises with the list of names and close matches
    check_count(args.batch_size, "--batch-size", 1, 1)
    for name in names:  # every size checked before the first measurement
        check_image_size(args.image_size, create_model(name).size_multiple, name)
    rows = []
    for name in names:
        model = create_model(name)
        rows.append(
            profile_model(
                model, args.image_size, args.batch_size, args.device,
                warmup=args.warmup, repeats=args.repeats, latency=not args.no_latency,
                throughput_batch=0 if args.no_latency else args.throughput_batch, amp=args.amp,
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
        f"{f'images/s at batch {args.throughput_batch}; ' if args.throughput_batch else ''}MACs/FLOPs per image, "
        f"counted with FlopCounterMode under the MATH attention backend; device {r['device']}, "
        f"{r['threads']} threads, {r['precision']}, torch {torch.__version__}"
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


def cmd_demo(args: argparse.Namespace) -> int:
    from .recipes.demo import run_demo

    return run_demo(out=args.out, seconds=args.seconds)


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    for name in list_models(args.pattern):
        note = "  (the SSL pretraining model: nexnet pretrain; not for train)" if name == "ssl_autoencoder" else ""
        print(f"{name}{note}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from .data.cache import cache_root, cache_size, clear_cache

    if args.clear:
        print(f"removed the decode cache in {cache_root()}: {clear_cache() / 2**20:.1f} MiB freed")
    else:
        print(f"decode cache: {cache_root()} ({cache_size() / 2**20:.1f} MiB; set NEXNET_CACHE_DIR to move it)")
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
        args.dataset, args.data_root, args.split, args.split_seed, args.skip_bad, args.mask_suffix, args.workers
    )
    print(format_report(report))
    if split is not None and args.split_out:
        split.save(args.split_out)
        print(f"wrote {args.split_out}")
    return 0 if report.usable else 1


def _saved_config(out) -> dict:  # noqa: ANN001
    """The resolved config of the run in ``out``, for ``--resume``."""
    from .training import load_yaml

    if not (out / "config.yaml").is_file():
        raise NexnetError(f"--resume: {out} holds no config.yaml; start the run without --resume")
    return load_yaml(out / "config.yaml")


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .training import merge, resolve, train

    out = Path(args.out)
    if args.resume:
        cfg = _saved_config(out)
        keep = {"train": {k: v for k, v in (("epochs", args.epochs), ("max_minutes", args.max_minutes),
                                             ("device", args.device)) if v is not None}}  # fmt: skip
        if args.data_root:  # a moved dataset: its split.json's cases must all be there
            keep["data"] = {"data_root": str(Path(args.data_root).resolve())}
        cfg = merge(cfg, keep)
    else:
        cfg = resolve(
            args.config, args.set,
            model__name=args.model, data__dataset=args.dataset, data__data_root=args.data_root,
            data__split=args.split, data__seed=args.split_seed, data__image_size=args.image_size,
            data__mask_suffix=args.mask_suffix, data__skip_bad=args.skip_bad or None,
            data__workers=args.workers, train__epochs=args.epochs, train__batch_size=args.batch_size,
            train__device=args.device, train__amp=args.amp or None, train__seed=args.seed,
            train__max_minutes=args.max_minutes, train__compile=args.compile or None,
        )  # fmt: skip
        if args.ssl_checkpoint:
            cfg = merge(cfg, {"model": {"ssl": True, "freeze_ssl": bool(args.freeze_encoder)},
                              "train": {"ssl_checkpoint": str(args.ssl_checkpoint)}})  # fmt: skip
        elif args.freeze_encoder:
            raise NexnetError("--freeze-encoder goes with --ssl-checkpoint")
    train(cfg, out, resume=args.resume, quiet=args.quiet)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .outputs import refuse_inside_sources
    from .recipes import reproduce as R

    out = Path(args.out)
    device = args.device or "auto"
    if args.table == "4":
        models = args.models or (["nexnet_seg", "unet"] if args.quick else [*R.MODELS, "nexnet_seg_ssl"])
        R.table4(out, models, args.quick, "cpu" if device == "auto" else device, print)
    else:
        if not args.data_root:
            raise NexnetError(f"--table {args.table} needs --data-root")
        refuse_inside_sources(out, "--out", {"--data-root": args.data_root})
        default_sets = ["kvasir"] if args.quick else R.DATASETS
        datasets = args.datasets or default_sets
        if args.table == "1":
            models = args.models or (["nexnet_seg", "unet"] if args.quick else list(R.MODELS))
            R.table1(Path(args.data_root), out, datasets, models, args.quick, device, print, args.set,
                     args.paper_exact)  # fmt: skip
        else:
            R.table2(Path(args.data_root), out, datasets, args.quick, device, print, args.set, args.paper_exact)
    name = R.table_name(int(args.table), args.paper_exact and args.table != "4")
    print(f"wrote {out}/{name}.md and .csv")
    return 0


def _checkpoint(path: str) -> str:
    """A run folder stands for its best/ checkpoint, with a note saying so."""
    from .models.base import checkpoint_folder

    folder, note = checkpoint_folder(path)
    if note:
        print(note)
    return str(folder)


def cmd_export(args: argparse.Namespace) -> int:
    from .inference.export import export_onnx

    if args.format != "onnx":
        raise NexnetError(f"--format {args.format}: only onnx is supported")
    export_onnx(_checkpoint(args.checkpoint), args.out, args.dynamic, args.image, args.opset)
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .training import PRETRAIN_DEFAULTS, pretrain

    out = Path(args.out)
    if args.resume:
        cfg = _saved_config(out)
        if args.epochs:
            cfg["epochs"] = args.epochs
    else:
        if not args.dataset or not args.data_root:
            raise NexnetError("name the data: --dataset NAME[,NAME] --data-root PATH[,PATH]")
        flags = {"datasets": _csv(args.dataset), "data_roots": _csv(args.data_root), "split": args.split,
                 "seed": args.seed, "split_seed": args.split_seed, "image_size": args.image_size, "epochs": args.epochs,
                 "batch_size": args.batch_size, "lr": args.lr, "noise": args.noise,
                 "vgg_weights": args.vgg_weights, "device": args.device, "max_minutes": args.max_minutes,
                 "workers": args.workers}  # fmt: skip
        cfg = {**PRETRAIN_DEFAULTS, **{k: v for k, v in flags.items() if v is not None}}
    pretrain(cfg, out, resume=args.resume, quiet=args.quiet)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    checkpoint = _checkpoint(args.checkpoint)
    evaluate(checkpoint, args.dataset, args.data_root, args.split, args.subset, args.threshold,
             args.tta, args.protocol, args.out or checkpoint, args.device, amp=args.amp,
             split_seed=args.split_seed, graphs=not args.no_graphs)  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import predict

    checkpoint = _checkpoint(args.checkpoint) if args.checkpoint else None
    result = predict(checkpoint, args.input, args.out, args.overlay, args.gt, args.tta, args.device,
                     onnx=args.onnx, amp=args.amp, graphs=not args.no_graphs, split_file=args.split_file,
                     subset=args.subset)  # fmt: skip
    return 1 if result["failed"] else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve.server import serve

    checkpoint = _checkpoint(args.checkpoint) if args.checkpoint else None
    if args.max_batch < 1:
        raise NexnetError(f"--max-batch {args.max_batch}: must be at least 1")
    return serve(checkpoint, args.onnx, args.host, args.port, args.device, args.amp, args.tta, args.max_batch,
                 args.max_upload_mb)  # fmt: skip


def cmd_score(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .evaluation import score
    from .inference import PREDICT_RECORD

    same = Path(args.pred).resolve() == Path(args.gt).resolve()  # refused by score itself, in its words
    if not args.out and not same and not (Path(args.pred) / PREDICT_RECORD).is_file():
        raise NexnetError(f"--pred {args.pred} was not written by nexnet predict, so summary.json does not go "
                          "there by default; give --out FOLDER")  # fmt: skip
    score(
        args.pred,
        args.gt,
        args.out or args.pred,
        ignore_missing=args.ignore_missing,
        split_file=args.split_file,
        subset=args.subset,
    )
    return 0
