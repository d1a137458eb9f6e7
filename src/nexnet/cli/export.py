"""``nexnet export``: a checkpoint to ONNX, checked with onnxruntime."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import checkpoint_with_note


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    x = sub.add_parser("export", help="export a checkpoint to ONNX, checked with onnxruntime",
                       description="Export to ONNX (needs the onnx extra: pip install 'nexnet-seg[onnx]') and "
                       "compare onnxruntime with PyTorch on a random input and an image.")  # fmt: skip
    x.add_argument("--checkpoint", "--model_path", required=True)
    x.add_argument("--format", default="onnx", choices=["onnx"])
    x.add_argument("--out", required=True, help="the .onnx file to write")
    x.add_argument("--dynamic", action="store_true", help="dynamic height and width as well as batch")
    x.add_argument("--image", default=None, help="an image for the check (default: a synthetic one)")
    x.add_argument("--opset", type=int, default=17)
    return x


def run(args: argparse.Namespace) -> int:
    from ..inference.export import export_onnx

    if args.format != "onnx":
        raise NexnetError(f"--format {args.format}: only onnx is supported")
    export_onnx(checkpoint_with_note(args.checkpoint), args.out, args.dynamic, args.image, args.opset)
    return 0
