"""Model cost: parameters, multiply-accumulates and latency."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from .runtime import autocast, place_model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:  # fmt: skip
    flops = 0
    if output_mask[0]:  # the input gradient is a transposed convolution with the same weights
        flops += conv_flop_count(grad_out_shape, w_shape, out_shape[0], not transposed)
    if output_mask[1]:  # the weight gradient does one multiply-add per multiply-add of the forward pass
        flops += conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return flops


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` that counts grouped convolutions' weight gradients per group.

    torch 2.13's formula treats the weight gradient of a grouped convolution as a dense one: for a
    depthwise convolution with ``C`` channels it counts ``C`` times the work done (46 phantom GFLOP
    in a NExNet Seg training step at batch 4, 224 px).
    """
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop})


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


def measure_latency(model: nn.Module, *inputs: torch.Tensor, warmup: int = 3, repeats: int = 10,
                    amp: bool = False) -> dict[str, float]:  # fmt: skip
    """Median and interquartile range of forward-pass wall time in seconds, after ``warmup`` runs.
    ``amp``: under bf16 autocast."""
    model.eval()
    device = inputs[0].device

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = []
    with torch.inference_mode(), autocast(torch.bfloat16 if amp else None, device):
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            model(*inputs)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_s": statistics.median(times), "iqr_s": q[2] - q[0], "repeats": repeats}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        m = re.search(rf"{field}:\s+(\d+)", f.read())
    if m is None:
        raise OSError(f"no {field} in /proc/self/status")
    return int(m.group(1))


def peak_extra_memory_mb(fn: Callable[[], object], device: torch.device | str = "cpu") -> float | None:
    """Peak memory that ``fn()`` adds, in MiB: CUDA allocator peak, or the CPU's peak resident set
    (Linux, by resetting VmHWM); None where it cannot be measured."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident set size
        base = _status_kb("VmRSS")
    except OSError:
        return None
    fn()
    return (_status_kb("VmHWM") - base) / 1024


def forward_peak_memory_mb(model: nn.Module, batch: int, h: int, w: int, device: str | torch.device,
                           amp: bool = False) -> float | None:  # fmt: skip
    """Peak memory of one inference forward pass (after a warm-up) of a registered model.

    On CPU it runs in a fresh interpreter with glibc's mmap threshold fixed at 64 KiB, so that memory
    freed by earlier calls cannot hide the peak; the threshold would slow timing, so not in this process.
    """
    name = getattr(model, "model_name", "")
    if torch.device(device).type == "cuda" or not name:
        x = torch.randn(batch, getattr(model, "in_channels", 3), h, w, device=device)
        with torch.inference_mode(), autocast(torch.bfloat16 if amp else None, torch.device(device)):
            model(x)
            return peak_extra_memory_mb(lambda: model(x), device)
    code = (
        "import json, sys, torch\n"
        "from nexnet.models import create_model\n"
        "from nexnet.profile import peak_extra_memory_mb\n"
        "from nexnet.runtime import place_model\n"
        "a = json.loads(sys.argv[1])\n"
        "m = place_model(create_model(a['name'], **a['config']), 'cpu').eval()\n"
        "x = torch.randn(a['batch'], getattr(m, 'in_channels', 3), a['h'], a['w'])\n"
        "amp = torch.autocast('cpu', dtype=torch.bfloat16, enabled=a['amp'])\n"
        "with torch.inference_mode(), amp:\n"
        "    m(x)\n"
        "    print(peak_extra_memory_mb(lambda: m(x)))\n"
    )
    arg = json.dumps({"name": name, "config": model.config, "batch": batch, "h": h, "w": w, "amp": amp})
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    r = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True, env=env)
    last = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else "None"
    return None if last == "None" else float(last)


def measure_throughput(model: nn.Module, batch: torch.Tensor, repeats: int = 3, amp: bool = False) -> float:
    """Inference images per second on ``batch``, median of ``repeats`` after one warm-up."""
    t = measure_latency(model, batch, warmup=1, repeats=repeats, amp=amp)["median_s"]
    return batch.shape[0] / t


def profile_model(
    model: nn.Module,
    image_size: int | tuple[int, int] = 224,
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 3,
    repeats: int = 10,
    latency: bool = True,
    throughput_batch: int = 0,
    amp: bool = False,
) -> dict[str, Any]:
    """Parameters, GMACs/GFLOPs (per image) and median latency of ``model`` on a random input.
    ``amp``: time (and measure memory) under bf16 autocast; the counts do not depend on it."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    model = place_model(model, device)
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
        "precision": "bfloat16 autocast" if amp else "float32",
    }
    if latency:
        batch = torch.randn(batch_size, in_channels, h, w, device=device)
        row.update(measure_latency(model, batch, warmup=warmup, repeats=repeats, amp=amp))
        row["peak_mb"] = forward_peak_memory_mb(model, batch_size, h, w, device, amp)
    if throughput_batch:
        big = torch.randn(throughput_batch, in_channels, h, w, device=device)
        row["throughput_batch"] = throughput_batch
        row["images_per_s"] = measure_throughput(model, big, amp=amp)
    return row


def format_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table in the shape of the paper's Table 4."""
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    out = ["| model | params (M) | GMACs | GFLOPs | latency b1 ms (IQR) | images/s | peak MiB |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lat = f"{r['median_s'] * 1e3:.1f} ({r['iqr_s'] * 1e3:.1f})" if "median_s" in r else "-"
        ips = f"{r['images_per_s']:.2f} (b{r['throughput_batch']})" if "images_per_s" in r else "-"
        out.append(f"| {r['model']} | {r['params_m']:.2f} | {r['gmacs']:.2f} | {r['gflops']:.2f} | {lat} | {ips} "
                   f"| {f(r.get('peak_mb'), '.0f')} |")  # fmt: skip
    return "\n".join(out)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of ``profile_model`` rows."""
    header = (f"{'model':<16} {'params (M)':>10} {'GMACs':>8} {'GFLOPs':>8} {'latency ms':>11} {'IQR ms':>8} "
              f"{'img/s':>8} {'peak MiB':>9}")  # fmt: skip
    lines = [header, "-" * len(header)]
    for r in rows:
        lat = f"{r['median_s'] * 1e3:11.1f} {r['iqr_s'] * 1e3:8.1f}" if "median_s" in r else f"{'-':>11} {'-':>8}"
        ips = f"{r['images_per_s']:8.2f}" if "images_per_s" in r else f"{'-':>8}"
        mem = f"{r['peak_mb']:9.0f}" if r.get("peak_mb") is not None else f"{'-':>9}"
        lines.append(f"{r['model']:<16} {r['params_m']:10.2f} {r['gmacs']:8.2f} {r['gflops']:8.2f} {lat} {ips} {mem}")
    return "\n".join(lines)


def ssl_parameter_note(**keywords: Any) -> str:
    """What the SSL-fused model's parameters are made of (the paper counts them differently);
    ``keywords`` (a form, say) go to both NExNet Seg models."""
    from .models import create_model

    fused, plain = (create_model(n, **keywords) for n in ("nexnet_seg_ssl", "nexnet_seg"))
    ae = create_model("ssl_autoencoder")
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
