"""Convolutional building blocks of NExNet Seg: DoubleConv, ConvMaSA and the NEx block."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .masa import ManhattanSelfAttention
from .tpen import TPEN


class DoubleConv(nn.Sequential):
    """(Conv3x3 - BN - ReLU) twice. ``(B, C_in, H, W) -> (B, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        mid = mid_channels or out_channels
        super().__init__(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ConvMaSA(nn.Module):
    """``MaSA(DoubleConv(x))``, or ``MaSA(x + DoubleConv(x))`` with ``residual=True`` (then
    ``C_in == C_out``); with ``masa=False`` the attention is the identity. ``zero_init`` starts
    the attention as the identity (:class:`ManhattanSelfAttention`).

    Shapes: ``(B, C_in, H, W) -> (B, C_out, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        masa: bool = True,
        gamma: float | str = 0.8,
        head_dim: int = 32,
        masa_mode: str = "decomposed",
        residual: bool = False,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError(f"a residual ConvMaSA needs as many channels in as out, got {in_channels}, {out_channels}")
        self.residual = residual
        self.conv = DoubleConv(in_channels, out_channels)
        self.attention: nn.Module = (
            ManhattanSelfAttention(out_channels, head_dim=head_dim, gamma=gamma, mode=masa_mode, zero_init=zero_init)
            if masa
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        # T-PEN hands over float32; under autocast the sum keeps the convolution's dtype, as without it.
        return self.attention(x.to(h.dtype) + h if self.residual else h)


ENCODER_CHAINS = ("nex", "conv_masa")


@dataclass(frozen=True)
class LevelOptions:
    """What every encoder level of NExNet Seg shares; :class:`NExNetSeg`'s keywords of the same names
    (``chain`` is its ``encoder_chain``)."""

    tpen: bool = True
    order: int = 3
    masa: bool = True
    gamma: float | str = 0.8
    head_dim: int = 32
    masa_mode: str = "decomposed"
    tpen_clip: float | None = None
    tpen_init: str = "log1p"
    chain: str = "nex"
    dilation: int = 2
    residual: bool = False
    masa_zero_init: bool = False


class NExBlock(nn.Module):
    """One encoder level of NExNet Seg.

    ``x_out = TPEN(ReLU(Conv3x3_dilated(BN(x))))`` and ``skip = ConvMaSA(x_out)``; ``skip`` goes to
    the decoder. ``options.chain`` says which of the two goes on to the next level: ``"nex"`` (the
    paper: ``x_out``, so the main path has one convolution per level) or ``"conv_masa"`` (``skip``:
    the main path also runs the DoubleConv and the attention, three convolutions per level).
    ``options.dilation`` is the first convolution's dilation (the paper's 2, or 1);
    ``options.residual`` adds ``x_out`` to the DoubleConv's output before the attention.

    Shapes: ``(B, C_in, H, W) -> ((B, C_out, H, W) onward, (B, C_out, H, W) skip)``.
    """

    def __init__(self, in_channels: int, out_channels: int, options: LevelOptions = LevelOptions()) -> None:
        super().__init__()
        o = options
        if o.chain not in ENCODER_CHAINS:
            raise ValueError(f"encoder_chain must be one of {', '.join(ENCODER_CHAINS)}, got {o.chain!r}")
        self.chain = o.chain
        self.norm = nn.BatchNorm2d(in_channels)
        d = o.dilation
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ValueError(f"dilation must be a whole number of at least 1, got {d!r}")
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=d, dilation=d)
        self.act = nn.ReLU(inplace=True)
        # The "no T-PEN" ablation is the plain neuron: order 1, coefficient frozen at 1.
        self.tpen = (
            TPEN(out_channels, order=o.order, clip=o.tpen_clip, init=o.tpen_init)
            if o.tpen
            else TPEN(out_channels, 1, False)
        )
        self.conv_masa = ConvMaSA(out_channels, out_channels, o.masa, o.gamma, o.head_dim, o.masa_mode, o.residual,
                                  o.masa_zero_init)  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tpen(self.act(self.conv(self.norm(x))))
        skip = self.conv_masa(x)
        return (skip if self.chain == "conv_masa" else x), skip
