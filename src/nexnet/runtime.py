"""Run-time settings that make the same computation faster: memory layout and the CPU allocator.

Neither changes what a model computes (beyond float rounding); both are on by default in the
``nexnet`` command line and can be turned off (``NEXNET_CHANNELS_LAST=0``, ``NEXNET_MALLOC=system``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import torch
from torch import nn

from .errors import NexnetError

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_OFF = {"0", "false", "no", "off", "system"}


def _enabled(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() not in _OFF


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    By default glibc serves large blocks with mmap and returns them on free, so every training step
    or forward pass faults its activations in again, page by page: about a fifth of a CPU training
    step at 224 px (docs/performance.md). With mmap off and trimming off, freed blocks are reused;
    the price is that the process keeps its peak memory until it exits. Returns whether it applied
    (glibc on Linux only, and not when ``NEXNET_MALLOC=system``).
    """
    if not sys.platform.startswith("linux") or not _enabled("NEXNET_MALLOC"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def prefers_channels_last(model: nn.Module) -> bool:
    """Whether ``model`` runs faster with channels_last weights (a class attribute of each model)."""
    return bool(getattr(model, "prefers_channels_last", False)) and _enabled("NEXNET_CHANNELS_LAST")


def place_model(model: nn.Module, device: torch.device | str, fast_layout: bool = True) -> nn.Module:
    """Move ``model`` to ``device`` and, where it is faster, to channels_last memory.

    Convolutions follow the weights' layout, so inputs need no conversion. ``fast_layout=False``
    keeps the default layout (for export).
    """
    model = model.to(device)
    if fast_layout and prefers_channels_last(model):
        model = model.to(memory_format=torch.channels_last)
    return model


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``, ``cpu`` or ``cuda`` (the process's GPU under torchrun) as a device, or one line."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise NexnetError("--device cuda: no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise NexnetError(f"--device {name}: use auto, cpu or cuda")
    return torch.device("cpu")


def autocast_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    """None (float32), or the autocast dtype: bf16 or fp16 on CUDA, bf16 on CPU."""
    if amp in (False, None, "false", "off", "none"):
        return None
    if amp in (True, "auto", "true", "on"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise NexnetError("amp fp16 needs CUDA; on CPU use bf16 (--amp)")
        return torch.float16
    raise NexnetError(f"train.amp={amp!r}: use false, auto, bf16 or fp16")


def slow_autocast_note(dtype: torch.dtype | None, device: torch.device) -> str:
    """A warning for bf16 autocast on a CPU without AMX (where it runs slower than float32), else ''."""
    if dtype != torch.bfloat16 or device.type != "cpu":
        return ""
    return "" if has_amx(unknown=True) else "this CPU has no AMX: bf16 autocast runs slower than float32 here"


def has_amx(unknown: bool) -> bool:
    """Whether this CPU has AMX tiles (``unknown`` where torch cannot tell)."""
    return getattr(torch.cpu, "_is_amx_tile_supported", lambda: unknown)()


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what ``platform`` knows."""
    import platform

    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
            if name:
                return name
    return platform.processor() or platform.machine()


def machine() -> str:
    """The CPU's model name and core count, the widest vector unit torch uses, AMX where it has it,
    and torch's version, e.g. ``AMD EPYC, 2 cores, AVX512, torch 2.13.0+cpu``: what a wall-time
    budget bought (two CPUs of one model name may differ in their vector units)."""
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    parts = [cpu_name(), f"{os.cpu_count()} cores", capability] + (["AMX"] if has_amx(unknown=False) else [])
    return ", ".join([p for p in parts if p] + [f"torch {torch.__version__}"])


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing for float32 (``None``)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def precision_name(amp: torch.dtype | None) -> str:
    """How a run or a predictor computes: ``float32``, or ``bfloat16 autocast`` / ``float16 autocast``."""
    return "float32" if amp is None else f"{str(amp).removeprefix('torch.')} autocast"
