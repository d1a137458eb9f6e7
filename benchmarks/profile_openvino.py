"""Where OpenVINO spends a batch's time, per kind of layer, for each model and precision.

    python benchmarks/profile_openvino.py --models nexnet_seg,unet --size 224 --threads 2 \
        --precisions f32,bf16,int8 --batch 1 --runs 20 [--json OUT.json]

Each model is built with random weights (speed only), converted as ``nexnet export`` converts it,
and compiled with OpenVINO's per-layer counters. int8 is NNCF's post-training quantization of every
layer, calibrated on ``--calibration`` random images: the same graph ``nexnet export --int8`` writes
when no layer is kept at float32. The table sums each layer kind's median time over ``--runs``
inferences (timed with the counters on, which add a little), with the kernel it ran
(``exec_type``: ``brgconv_avx512_amx_I8`` is an AMX int8 convolution, ``jit_avx512_FP32`` a vector
float32 one) and its share of the whole. Needs the onnx and deploy extras.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import model_spec

from nexnet import create_model
from nexnet.inference import Predictor
from nexnet.inference.openvino import require_openvino, to_openvino


def openvino_model(spec: str, size: int) -> Any:
    """``spec`` (``NAME[:KEY=VALUE...]``) with random weights as an ``openvino.Model``, through
    nexnet's ONNX export."""
    torch.manual_seed(0)
    name, keywords = model_spec(spec)
    model = create_model(name, **keywords).eval()
    return to_openvino(Predictor(model=model, image_size=size, device=torch.device("cpu")))


def compiled(model: Any, precision: str, size: int, threads: int, calibration: int) -> Any:
    """``model`` compiled for the CPU at ``precision`` (f32, bf16 or int8) with per-layer counters on."""
    ov = require_openvino()
    if precision == "int8":
        import nncf

        rng = np.random.default_rng(0)
        data = nncf.Dataset([rng.random((1, 3, size, size), dtype=np.float32) for _ in range(calibration)])
        model = nncf.quantize(model, data, subset_size=calibration)
    hint = "bf16" if precision == "bf16" else "f32"
    config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True}
    return ov.Core().compile_model(model, "CPU", config)


def layer_times(net: Any, x: np.ndarray, runs: int) -> tuple[float, dict[tuple[str, str], float]]:
    """Median wall ms of one inference, and each (layer type, kernel)'s summed median ms."""
    request = net.create_infer_request()
    for _ in range(3):  # warm-up
        request.infer({0: x})
    walls, per_layer = [], defaultdict(list)
    for _ in range(runs):
        start = time.perf_counter()
        request.infer({0: x})
        walls.append((time.perf_counter() - start) * 1000)
        for info in request.profiling_info:
            if info.status.name == "EXECUTED":
                per_layer[(info.node_name, info.node_type, info.exec_type)].append(info.real_time.total_seconds() * 1e3)
    kinds: dict[tuple[str, str], float] = defaultdict(float)
    for (_, node_type, exec_type), times in per_layer.items():
        kinds[(node_type, exec_type)] += statistics.median(times)
    return statistics.median(walls), dict(kinds)


def table(name: str, precision: str, wall: float, kinds: dict[tuple[str, str], float], top: int) -> str:
    """A markdown table of the ``top`` (layer type, kernel) pairs by time, with their shares."""
    total = sum(kinds.values()) or 1.0
    lines = [f"### {name}, {precision}: {wall:.1f} ms a batch with the counters on (layers sum to {total:.1f} ms)", "",
             "| layer | kernel | ms | share |", "|---|---|---|---|"]  # fmt: skip
    for (node_type, exec_type), ms in sorted(kinds.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {node_type} | {exec_type} | {ms:.2f} | {ms / total:.0%} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="nexnet_seg,unet", help="NAME[:KEY=VALUE...], comma-separated")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--precisions", default="f32,bf16,int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--calibration", type=int, default=20, help="random images for int8 (speed only)")
    p.add_argument("--top", type=int, default=12, help="layer kinds per table")
    p.add_argument("--json", default=None, help="also write every (layer, kernel) time here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = np.random.default_rng(1).random((args.batch, 3, args.size, args.size), dtype=np.float32)
    results: dict = {}
    for name in [n for n in re.split(r",(?![^\[]*\])", args.models) if n]:  # not inside [...]
        model = openvino_model(name, args.size)
        for precision in args.precisions.split(","):
            net = compiled(model, precision, args.size, args.threads, args.calibration)
            wall, kinds = layer_times(net, x, args.runs)
            hint = net.get_property("INFERENCE_PRECISION_HINT")  # what the CPU granted, not what was asked
            print(table(name, f"{precision} (precision hint {hint})", wall, kinds, args.top), "\n", flush=True)
            results[f"{name} {precision}"] = {
                "wall_ms": wall,
                "layers": {f"{t} | {k}": ms for (t, k), ms in kinds.items()},
            }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
