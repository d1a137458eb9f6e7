"""Flip test-time augmentation, one definition for the PyTorch and the ONNX predictor."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")  # a torch.Tensor or a numpy array, (N, C, H, W)

FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))  # identity, horizontal, vertical, both


def averaged_over_flips(forward: Callable[[T], T], x: T, tta: bool, flip: Callable[[T, tuple[int, ...]], T]) -> T:
    """``forward(x)``, or with ``tta`` its mean over the four flips of ``x``, each flipped back.
    Each flip is its own inverse. ``+ 0`` copies: a replayed CUDA graph overwrites its output."""
    flips = FLIPS if tta else ((),)
    total = None
    for dims in flips:
        p = forward(flip(x, dims) if dims else x)
        p = flip(p, dims) if dims else p
        total = p + 0 if total is None else total + p
    return total / len(flips)  # type: ignore[operator]
