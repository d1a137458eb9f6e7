"""The SSL denoising autoencoder of NExNet Seg, and its encoder as used inside the segmentation network.

A U-Net of base width 32 (32-64-128-256-512) with a 1024-channel bottleneck at 1/32 resolution,
bilinear upsampling and a sigmoid output with the input's channels. The first three encoder levels
feed their skips through a Conv-MaSA side branch. The embedding is the bottleneck's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import SegmentationModel
from .blocks import ConvMaSA, DoubleConv
from .input_checks import check_image_batch
from .registry import register_model
from .upsample import upsample_bilinear

AE_WIDTHS = (32, 64, 128, 256, 512, 1024)


class SSLEncoder(nn.Module):
    """The autoencoder's encoder path: DoubleConv levels with 2x2 max-pools.

    Shapes: ``(B, C, H, W) -> [(B, w_i, H/2^i, W/2^i) for i = 0..5]``; the last is the embedding
    ``(B, 1024, H/32, W/32)``.
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = AE_WIDTHS) -> None:
        super().__init__()
        ins = [in_channels, *widths[:-1]]
        self.levels = nn.ModuleList(DoubleConv(i, o) for i, o in zip(ins, widths))
        self.pool = nn.MaxPool2d(2)
        self.out_channels = widths[-1]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, level in enumerate(self.levels):
            x = level(self.pool(x) if i else x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]


class SSLAutoencoder(SegmentationModel):
    """Denoising autoencoder. Shapes: ``(B, C, H, W)`` in [0, 1], H, W multiples of 32 -> same, in (0, 1)."""

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = AE_WIDTHS, masa_levels: int = 3,
                 gamma: float | str = 0.8) -> None:  # fmt: skip
        super().__init__()
        widths = [int(w) for w in widths]
        self.config = dict(in_channels=in_channels, widths=widths, masa_levels=masa_levels, gamma=gamma)
        self.in_channels = in_channels
        self.encoder = SSLEncoder(in_channels, widths)
        self.side = nn.ModuleList(ConvMaSA(w, w, gamma=gamma) for w in widths[:masa_levels])
        self.decoder = nn.ModuleList(
            DoubleConv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, self.size_multiple, "SSLAutoencoder")
        feats = self.encoder.features(x)
        skips = [side(f) for side, f in zip(self.side, feats)] + feats[len(self.side) : -1]
        d = feats[-1]
        for block in self.decoder:
            skip = skips.pop()
            up = upsample_bilinear(d, size=skip.shape[-2:])
            d = block(torch.cat([up, skip], 1))
        return torch.sigmoid(self.head(d))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck embedding ``(B, 1024, H/32, W/32)``."""
        return self.encoder(x)


@register_model
def ssl_autoencoder(**kwargs) -> SSLAutoencoder:
    """NExNet Seg's SSL denoising autoencoder (base 32, 1024-channel bottleneck)."""
    return SSLAutoencoder(**kwargs)
