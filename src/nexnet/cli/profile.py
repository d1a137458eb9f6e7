"""``nexnet profile``: parameters, MACs and latency of registered models."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import csv_list


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "profile",
        help="parameters, GMACs/GFLOPs and latency of registered models",
        description="Count parameters and multiply-accumulates (attention included) and time the "
        "forward pass of one or more registered models on a random input.",
    )
    p.add_argument("--models", type=csv_list, default=["nexnet_seg"],
                   help="comma-separated registry names, or 'all' (default: nexnet_seg)")  # fmt: skip
    p.add_argument("--image-size", type=int, default=224, help="square input size (default 224)")
    p.add_argument("--batch-size", type=int, default=1, help="batch for the latency (default 1)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs (default 10)")
    p.add_argument("--no-latency", action="store_true", help="count parameters and MACs only")
    p.add_argument("--amp", action="store_true", help="time under bf16 autocast (fast on CPUs with AMX and on GPUs)")
    p.add_argument("--throughput-batch", type=int, default=16, help="batch for images/s (0: skip; default 16)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write a markdown table (the paper's Table 4 shape)")
    p.add_argument("--set", action="append", default=[], metavar="model.KEY=VALUE", dest="model_args",
                   help="a model keyword for every model profiled, e.g. model.form=paper (repeatable)")  # fmt: skip
    return p


def model_keywords(items: list[str]) -> dict:
    """``--set model.KEY=VALUE`` items as keyword arguments; only model keys make sense here."""
    from ..training.config import parse_set

    parsed = parse_set(items)
    other = sorted(set(parsed) - {"model"})
    if other:
        raise NexnetError(f"--set {other[0]}.*: profile takes model keys only, e.g. --set model.form=paper")
    keywords = parsed.get("model", {})
    if "name" in keywords:
        raise NexnetError("--set model.name: name the models with --models, e.g. --models nexnet_seg,unet")
    return keywords


def run(args: argparse.Namespace) -> int:
    import torch

    from ..io import atomic_write_json
    from ..models import create_model, list_models
    from ..profile import format_table, profile_model, ssl_parameter_note
    from ..training.config import check_count, check_image_size

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise NexnetError("--device cuda: no CUDA device is available; use --device cpu")
    names = list_models() if args.models == ["all"] else args.models
    keywords = model_keywords(args.model_args)
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        create_model(unknown[0])  # raises with the list of names and close matches
    check_count(args.batch_size, "--batch-size", 1, 1)
    for name in names:  # every size checked before the first measurement
        check_image_size(args.image_size, create_model(name, **keywords).size_multiple, name, "--image-size")
    rows = []
    for name in names:
        model = create_model(name, **keywords)
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
        print(ssl_parameter_note(**keywords))
    r = rows[0]
    print(
        f"input {args.image_size}x{args.image_size}, batch {args.batch_size} for latency "
        f"(median of {args.repeats} after {args.warmup} warm-up runs), peak memory of that forward pass, "
        f"{f'images/s at batch {args.throughput_batch}; ' if args.throughput_batch else ''}MACs/FLOPs per image, "
        f"counted with FlopCounterMode under the MATH attention backend; device {r['device']}, "
        f"{r['threads']} threads, {r['precision']}, torch {torch.__version__}"
        + "".join(f"; {k}={v}" for k, v in keywords.items())
    )
    if args.json:
        atomic_write_json(args.json, rows)
        print(f"wrote {args.json}")
    if args.markdown:
        from ..io import atomic_write_text
        from ..profile import format_markdown

        atomic_write_text(args.markdown, format_markdown(rows) + "\n")
        print(f"wrote {args.markdown}")
    return 0
