"""Flip test-time augmentation, one definition for every predictor; batching for the exported ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from ..data import to_model_input

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


def exported_probabilities(logits_of: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int,
                           tta: bool, size: int) -> np.ndarray:  # fmt: skip
    """``Predictor.probabilities`` for an exported model: ``(N, S, S, 3)`` uint8 -> ``(N, S, S)``
    float32, in batches, through ``logits_of`` (``(B, 3, S, S)`` float32 -> ``(B, C, S, S)`` logits)."""

    def probs(x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-logits_of(np.ascontiguousarray(x, dtype=np.float32))[:, :1]))

    out = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start : start + batch_size], "cpu").numpy()
        out.append(averaged_over_flips(probs, x, tta, lambda a, dims: np.flip(a, dims))[:, 0])
    return np.concatenate(out) if out else np.zeros((0, size, size), np.float32)
