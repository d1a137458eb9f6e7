"""Trainable progressively expanded neurons (T-PEN)."""

from __future__ import annotations

import torch
from torch import nn


def log1p_series(order: int) -> torch.Tensor:
    """Maclaurin coefficients of ``ln(1 + x)``: ``[1, -1/2, 1/3, ...]`` of length ``order``."""
    n = torch.arange(1, order + 1, dtype=torch.float32)
    return (-1.0) ** (n + 1) / n


class TPEN(nn.Module):
    """``y = BatchNorm(sum_{n=1..K} a[n, c] * x^n)`` with one learnable coefficient per order and channel.

    The polynomial is evaluated in Horner form in float32, also under autocast: the input follows
    a ReLU and is unbounded, so ``x^3`` overflows half precision for ``x`` of about 40.

    Args:
        channels: number of channels ``C``.
        order: expansion order ``K``; ``K = 1`` with ``trainable=False`` is the plain neuron.
        trainable: learn the coefficients (``False`` stores them as a buffer).
        clip: if set, the input is clamped to ``[-clip, clip]`` before the expansion. Stacked
            cubic expansions with eval-mode BatchNorm can otherwise grow as ``x^(3^depth)`` on
            unusual images and overflow (see docs/model.md).

    Shapes: input ``(B, C, H, W)``, output ``(B, C, H, W)`` in float32.
    """

    def __init__(self, channels: int, order: int = 3, trainable: bool = True, clip: float | None = None) -> None:
        super().__init__()
        if order < 1:
            raise ValueError(f"T-PEN order must be at least 1, got {order}")
        self.channels = channels
        self.order = order
        self.clip = clip
        init = log1p_series(order)[:, None].repeat(1, channels)  # (K, C)
        if trainable:
            self.coefficients = nn.Parameter(init)
        else:
            self.register_buffer("coefficients", init)
        self.norm = nn.BatchNorm2d(channels)

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """The power series alone, ``sum_n a[n, c] x^n``, in float32."""
        x = x.float()
        if self.clip is not None and self.order > 1:
            x = x.clamp(-self.clip, self.clip)
        a = self.coefficients.float()[:, None, :, None, None]  # (K, 1, C, 1, 1)
        y = a[self.order - 1]
        for n in range(self.order - 2, -1, -1):
            y = y * x + a[n]
        return y * x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.norm(self.expand(x))

    def extra_repr(self) -> str:
        trainable = isinstance(self.coefficients, nn.Parameter)
        return f"channels={self.channels}, order={self.order}, trainable={trainable}, clip={self.clip}"
