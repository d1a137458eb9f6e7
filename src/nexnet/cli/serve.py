"""``nexnet serve``: a model behind a web page and an HTTP API."""

from __future__ import annotations

import argparse

from ..errors import NexnetError
from .flags import AMP_INFERENCE_HELP, checkpoint_with_note


def add(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    v = sub.add_parser("serve", help="serve a model: a web page at / and an HTTP API (POST /predict)",
                       description="Serve one model behind a local web page (drop images, see the contour, "
                       "move the threshold, download the mask) and an HTTP API: POST /predict with a multipart "
                       "'image' returns the 0/255 PNG mask at the image's size, as nexnet predict writes it "
                       "(?format=json: its facts); GET /model, GET /health; API docs at /docs. Needs the "
                       "serve extra: pip install 'nexnet-seg[serve]'.")  # fmt: skip
    v.add_argument("--checkpoint", default=None, help="a best/ folder or a run folder")
    v.add_argument("--onnx", default=None, help="run this exported ONNX file through onnxruntime (with "
                   "--checkpoint, that folder describes the model)")  # fmt: skip
    v.add_argument("--openvino", default=None, help="run this folder from 'nexnet export --format openvino' "
                   "(float32 or int8; with --checkpoint, that folder describes the model)")  # fmt: skip
    v.add_argument("--host", default="127.0.0.1", help="address to listen on; anything but this machine's "
                   "own gets a warning (no authentication)")  # fmt: skip
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto: CUDA if present")
    v.add_argument("--amp", action="store_true", help=AMP_INFERENCE_HELP)
    v.add_argument("--tta", action="store_true", help="average over the four flips (4x the time)")
    v.add_argument("--max-batch", type=int, default=None, help="requests that arrive together run as one batch "
                   "of up to this many images (default: 1 on a CPU, so that every mask equals predict's to the "
                   "byte; 8 on CUDA, where batches of concurrent requests pay and a mask may differ from a batch "
                   "of one in a pixel at the threshold)")  # fmt: skip
    v.add_argument("--max-upload-mb", type=float, default=30.0, help="larger uploads are refused (413)")
    return v


def run(args: argparse.Namespace) -> int:
    from ..serve.server import serve

    checkpoint = checkpoint_with_note(args.checkpoint) if args.checkpoint else None
    if args.max_batch is not None and args.max_batch < 1:
        raise NexnetError(f"--max-batch {args.max_batch}: must be at least 1")
    return serve(checkpoint, args.onnx, args.host, args.port, args.device, args.amp, args.tta, args.max_batch,
                 args.max_upload_mb, openvino=args.openvino)  # fmt: skip
