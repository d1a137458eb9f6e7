"""``nexnet predict``: masks and overlays for an image or a folder."""

from __future__ import annotations

import argparse

from .flags import AMP_INFERENCE_HELP, NO_GRAPHS_HELP, add_part_flags, checkpoint_with_note


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="masks (and overlays) for an image or a folder of images",
                       description="Write a 0/255 PNG mask per image at the image's original size (resized to "
                       "the model's input size, thresholded at the checkpoint's threshold, resized back); with "
                       "--overlay, contour overlays and a preview grid. Never writes into the input or "
                       "ground-truth folders.")  # fmt: skip
    p.add_argument("--checkpoint", "--model_path", default=None, help="a best/ folder (save_pretrained)")
    p.add_argument("--onnx", default=None, help="run an exported ONNX file through onnxruntime instead")
    p.add_argument("--openvino", default=None,
                   help="run a folder from 'nexnet export --format openvino' (float32 or int8) instead")  # fmt: skip
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder (never the input folder)")
    p.add_argument("--overlay", action="store_true", help="also write contour overlays")
    p.add_argument("--gt", default=None, help="ground-truth mask folder, drawn in blue on overlays")
    p.add_argument("--tta", action="store_true", help="average probabilities over the four flips (4x the time)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto: CUDA if present")
    p.add_argument("--amp", action="store_true", help=AMP_INFERENCE_HELP)
    p.add_argument("--no-graphs", action="store_true", help=NO_GRAPHS_HELP)
    add_part_flags(p, "predict only the images of one part of a split.json, e.g. runs/kvasir/split.json")
    return p


def run(args: argparse.Namespace) -> int:
    from ..inference import predict

    checkpoint = checkpoint_with_note(args.checkpoint) if args.checkpoint else None
    result = predict(checkpoint, args.input, args.out, args.overlay, args.gt, args.tta, args.device,
                     onnx=args.onnx, amp=args.amp, graphs=not args.no_graphs, split_file=args.split_file,
                     subset=args.subset, openvino=args.openvino)  # fmt: skip
    return 1 if result["failed"] else 0
