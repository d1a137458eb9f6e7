"""Input checks that say how to fix the input."""

from __future__ import annotations

import torch


def nearest_multiples(size: int, multiple: int) -> list[int]:
    """The valid sizes on either side of ``size`` (one when ``size`` is below ``multiple``)."""
    below = size // multiple * multiple
    above = below + multiple
    return [above] if below == 0 else [below, above]


def check_image_batch(x: torch.Tensor, in_channels: int, multiple: int, model: str) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, H, W)`` with H, W multiples of ``multiple``."""
    if torch.jit.is_tracing():  # shapes are symbolic while exporting; checked on the example input
        return
    if x.dim() != 4:
        raise ValueError(f"{model} expects a 4-D (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"{model} expects {in_channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    for label, size in (("height", x.shape[2]), ("width", x.shape[3])):
        if isinstance(size, int) and size % multiple:
            valid = " or ".join(str(s) for s in nearest_multiples(size, multiple))
            raise ValueError(f"{model}: {label} {size} is not a multiple of {multiple}; use {valid}")
