"""Run-time settings that make the same computation faster: memory layout and the CPU allocator.

Neither changes what a model computes (beyond float rounding); both are on by default in the
``nexnet`` command line and can be turned off (``NEXNET_CHANNELS_LAST=0``, ``NEXNET_MALLOC=system``).
"""

from __future__ import annotations

import ctypes
import os
import sys

import torch
from torch import nn

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
