"""Model cost: parameters, multiply-accumulates and latency."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass (2 per multiply-accumulate), attention included.

    SDPA is forced onto its MATH backend: on CPU the fused kernel is invisible to the counter.
    Only matrix products and convolutions are counted, as in the usual GFLOPs tables.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
            model(*inputs)
    finally:
        model.train(was_training)
    return int(fc.get_total_flops())


def measure_latency(model: nn.Module, *inputs: torch.Tensor, warmup: int = 3, repeats: int = 10) -> dict[str, float]:
    """Median and interquartile range of forward-pass wall time in seconds, after ``warmup`` runs."""
    model.eval()
    device = inputs[0].device

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            model(*inputs)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_s": statistics.median(times), "iqr_s": q[2] - q[0], "repeats": repeats}


def profile_model(
    model: nn.Module,
    image_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 3,
    repeats: int = 10,
    latency: bool = True,
) -> dict[str, Any]:
    """Parameters, GMACs/GFLOPs (per image) and median latency of ``model`` on a random input."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    model = model.to(device)
    in_channels = getattr(model, "in_channels", 3)
    one = torch.randn(1, in_channels, h, w, device=device)
    flops = count_flops(model, one)
    row: dict[str, Any] = {
        "model": getattr(model, "model_name", type(model).__name__),
        "params": count_parameters(model),
        "params_m": count_parameters(model) / 1e6,
        "gmacs": flops / 2e9,
        "gflops": flops / 1e9,
        "image_size": [h, w],
        "batch_size": batch_size,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if latency:
        batch = torch.randn(batch_size, in_channels, h, w, device=device)
        row.update(measure_latency(model, batch, warmup=warmup, repeats=repeats))
    return row


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of ``profile_model`` rows."""
    header = f"{'model':<16} {'params (M)':>10} {'GMACs':>8} {'GFLOPs':>8} {'latency ms':>11} {'IQR ms':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lat = f"{r['median_s'] * 1e3:11.1f} {r['iqr_s'] * 1e3:8.1f}" if "median_s" in r else f"{'-':>11} {'-':>8}"
        lines.append(f"{r['model']:<16} {r['params_m']:10.2f} {r['gmacs']:8.2f} {r['gflops']:8.2f} {lat}")
    return "\n".join(lines)
