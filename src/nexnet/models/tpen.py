"""Trainable progressively expanded neurons (T-PEN)."""

from __future__ import annotations

import torch
from torch import nn

from .capture import capturing_graph

TPEN_INITS = ("log1p", "linear")


def log1p_series(order: int) -> torch.Tensor:
    """Maclaurin coefficients of ``ln(1 + x)``: ``[1, -1/2, 1/3, ...]`` of length ``order``."""
    n = torch.arange(1, order + 1, dtype=torch.float32)
    return (-1.0) ** (n + 1) / n


def linear_series(order: int) -> torch.Tensor:
    """``[1, 0, 0, ...]`` of length ``order``: the plain neuron, with every higher order starting at 0."""
    init = torch.zeros(order)
    init[0] = 1.0
    return init


def initial_coefficients(init: str, order: int) -> torch.Tensor:
    """The ``(order,)`` starting coefficients named by ``init`` (one of :data:`TPEN_INITS`)."""
    if init == "log1p":
        return log1p_series(order)
    if init == "linear":
        return linear_series(order)
    raise ValueError(f"T-PEN init must be one of {', '.join(TPEN_INITS)}, got {init!r}")


def power_series(x: torch.Tensor, coefficients: torch.Tensor, clip: float | None = None) -> torch.Tensor:
    """``sum_{n=1..K} a[n-1, c] * clamp(x)^n`` in Horner form, with plain autograd-recorded ops.

    The reference for :class:`PowerSeries` and the form that tracing (ONNX export) records.
    ``x``: ``(B, C, H, W)``; ``coefficients``: ``(K, C)``.
    """
    if clip is not None and coefficients.shape[0] > 1:
        x = x.clamp(-clip, clip)
    a = coefficients.to(x.dtype)[:, None, :, None, None]  # (K, 1, C, 1, 1)
    y = a[-1]
    for n in range(coefficients.shape[0] - 2, -1, -1):
        y = y * x + a[n]
    return y * x


class PowerSeries(torch.autograd.Function):
    """:func:`power_series` in fewer passes over memory, saving only its input for the backward pass.

    Recorded autograd would run six element-wise passes for a cubic and keep five full-size
    tensors per layer; here the forward is a clamp and ``K`` fused multiply-adds (in place), and
    the backward recomputes ``clamp(x)`` and differentiates the polynomial in Horner form.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficients: torch.Tensor, clip: float | None) -> torch.Tensor:  # noqa: ANN001
        order = coefficients.shape[0]
        clip = clip if order > 1 else None
        xc = x.clamp(-clip, clip) if clip is not None else x
        a = coefficients[:, None, :, None, None]
        if order == 1:
            y = xc * a[0]
        else:
            y = torch.addcmul(a[order - 2], a[order - 1], xc)
            for n in range(order - 3, -1, -1):
                torch.addcmul(a[n], y, xc, out=y)
            y.mul_(xc)
        ctx.clip = clip
        ctx.save_for_backward(x, coefficients)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # noqa: ANN001
        x, coefficients = ctx.saved_tensors
        order = coefficients.shape[0]
        xc = x.clamp(-ctx.clip, ctx.clip) if ctx.clip is not None else x
        a = coefficients[:, None, :, None, None]
        grad_x = grad_a = None
        if ctx.needs_input_grad[0]:
            # d/dx sum a_n x^(n+1) = sum (n+1) a_n x^n, in Horner form.
            slope = a[order - 1] * order
            if order > 1:
                slope = torch.addcmul(a[order - 2] * (order - 1), slope, xc)
                for n in range(order - 3, -1, -1):
                    torch.addcmul(a[n] * (n + 1), slope, xc, out=slope)
            grad_x = grad * slope
            if ctx.clip is not None:
                grad_x.masked_fill_(xc != x, 0)  # clamp passes no gradient where it clipped
        if ctx.needs_input_grad[1]:
            moment = grad * xc
            sums = [moment.sum((0, 2, 3))]
            for _ in range(1, order):
                sums.append(moment.mul_(xc).sum((0, 2, 3)))
            grad_a = torch.stack(sums)
        return grad_x, grad_a, None


class TPEN(nn.Module):
    """``y = BatchNorm(sum_{n=1..K} a[n, c] * x^n)`` with one learnable coefficient per order and channel.

    The polynomial is evaluated in float32 (float64 inputs stay float64), also under autocast: the
    input follows a ReLU and is unbounded, so ``x^3`` overflows half precision for ``x`` of about 40.
    It runs as one fused autograd function (:class:`PowerSeries`); tracing and ``torch.compile`` see
    plain ops, which they fuse themselves.

    Args:
        channels: number of channels ``C``.
        order: expansion order ``K``; ``K = 1`` with ``trainable=False`` is the plain neuron.
        trainable: learn the coefficients (``False`` stores them as a buffer).
        clip: if set, the input is clamped to ``[-clip, clip]`` before the expansion. Stacked
            cubic expansions with eval-mode BatchNorm can otherwise grow as ``x^(3^depth)`` on
            unusual images and overflow (see docs/model.md).
        init: starting coefficients: ``"log1p"`` (the paper's ``ln(1 + x)`` series) or ``"linear"``
            (``a = [1, 0, ..., 0]``: the layer starts as the plain neuron and learns its higher
            orders; it trains much faster, see docs/training.md).

    Shapes: input ``(B, C, H, W)``, output ``(B, C, H, W)`` in float32.
    """

    def __init__(
        self, channels: int, order: int = 3, trainable: bool = True, clip: float | None = None, init: str = "log1p"
    ) -> None:
        super().__init__()
        if order < 1:
            raise ValueError(f"T-PEN order must be at least 1, got {order}")
        self.channels = channels
        self.order = order
        self.clip = clip
        self.init = init
        start = initial_coefficients(init, order)[:, None].repeat(1, channels)  # (K, C)
        if trainable:
            self.coefficients = nn.Parameter(start)
        else:
            self.register_buffer("coefficients", start)
        self.norm = nn.BatchNorm2d(channels)

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """The power series alone, ``sum_n a[n, c] x^n``, in float32."""
        if x.dtype != torch.float64:
            x = x.float()
        if capturing_graph():
            return power_series(x, self.coefficients, self.clip)  # traced/compiled: plain ops fuse there
        return PowerSeries.apply(x, self.coefficients.to(x.dtype), self.clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.norm(self.expand(x))

    def extra_repr(self) -> str:
        trainable = isinstance(self.coefficients, nn.Parameter)
        return (f"channels={self.channels}, order={self.order}, trainable={trainable}, clip={self.clip}, "
                f"init={self.init}")  # fmt: skip
