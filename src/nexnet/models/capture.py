"""Questions the hand-written kernels ask before running: graph capture and memory layout."""

from __future__ import annotations

import torch


def capturing_graph() -> bool:
    """Whether the model is being traced (ONNX export) or compiled. Custom autograd functions and
    gradient hooks step aside then: tracing records plain ops, and compiled graphs fuse them and
    choose their own layouts."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def is_channels_last(t: torch.Tensor) -> bool:
    """Whether ``t`` is channels_last and not also plain contiguous (a 1x1 map is both)."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
