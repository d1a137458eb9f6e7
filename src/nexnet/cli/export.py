"""``nexnet export``: a checkpoint to ONNX (checked with onnxruntime) or OpenVINO IR (float32 or int8)."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import checkpoint_with_note


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    x = sub.add_parser("export", help="export a checkpoint to ONNX or OpenVINO (float32 or int8)",
                       description="--format onnx (the onnx extra: pip install 'nexnet-seg[onnx]') writes an .onnx "
                       "file and compares onnxruntime with PyTorch on a random input and an image. --format openvino "
                       "(the deploy extra: pip install 'nexnet-seg[deploy]') writes a folder of OpenVINO IR; with "
                       "--int8 it is quantized, calibrated on the checkpoint's training images only and verified on "
                       "its validation images, and refused when it loses more than --max-dice-drop of their mDice. "
                       "predict, evaluate and serve run it with --openvino DIR.")  # fmt: skip
    x.add_argument("--checkpoint", "--model_path", required=True)
    x.add_argument("--format", default="onnx", choices=["onnx", "openvino"])
    x.add_argument("--out", required=True, help="the .onnx file (onnx) or the folder (openvino) to write")
    x.add_argument("--dynamic", action="store_true", help="onnx: dynamic height and width as well as batch")
    x.add_argument("--image", default=None, help="onnx: an image for the check (default: a synthetic one)")
    x.add_argument("--opset", type=int, default=17, help="onnx: the opset")
    x.add_argument("--int8", action="store_true", help="openvino: post-training int8 (NNCF)")
    x.add_argument("--max-dice-drop", type=float, default=0.005,
                   help="openvino --int8: the most validation mDice int8 may lose against float32")  # fmt: skip
    x.add_argument("--data-root", default=None,
                   help="openvino --int8: the dataset folder (default: the one the run trained on)")  # fmt: skip
    x.add_argument("--calibration-images", type=int, default=300,
                   help="openvino --int8: training images that calibrate (a seeded sample)")  # fmt: skip
    return x


def run(args: argparse.Namespace) -> int:
    checkpoint = checkpoint_with_note(args.checkpoint)
    if args.format == "onnx":
        if args.int8:
            raise NexnetError("--int8 goes with --format openvino")
        from ..inference.export import export_onnx

        export_onnx(checkpoint, args.out, args.dynamic, args.image, args.opset)
        return 0
    if args.dynamic or args.image:
        raise NexnetError("--dynamic and --image go with --format onnx")
    if args.max_dice_drop < 0:
        raise NexnetError(f"--max-dice-drop {args.max_dice_drop}: give 0 or more, e.g. 0.005")
    from ..recipes.deploy import export_openvino

    export_openvino(checkpoint, args.out, args.int8, args.max_dice_drop, args.data_root, args.calibration_images,
                    args.threads)  # fmt: skip
    return 0
