"""U-Net (Ronneberger, Fischer and Brox, MICCAI 2015), with batch norm.

Departures from the paper: padded 3x3 convolutions (output size = input size, no cropping) and
batch norm after each convolution, as in most modern re-implementations.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SegmentationModel
from .blocks import DoubleConv
from .input_checks import check_image_batch
from .registry import register_model


class UNet(SegmentationModel):
    """Four 2x2 max-pool downsamplings, 2x2 transposed-convolution upsampling, skip concatenation.

    Shapes: ``(B, in_channels, H, W)`` with H, W multiples of 16 -> ``(B, num_classes, H, W)``.
    """

    size_multiple = 16

    def __init__(self, base_width: int = 64, in_channels: int = 3, num_classes: int = 1) -> None:
        super().__init__()
        self.config = dict(base_width=base_width, in_channels=in_channels, num_classes=num_classes)
        self.in_channels = in_channels
        widths = [base_width * 2**i for i in range(5)]  # 64 .. 1024
        self.down = nn.ModuleList([DoubleConv(in_channels, widths[0])])
        self.down.extend(DoubleConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths[:-1], widths[1:]))
        self.merge = nn.ModuleList(DoubleConv(2 * a, a) for a in widths[:-1])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, self.size_multiple, "UNet")
        skips = []
        for i, block in enumerate(self.down):
            x = block(self.pool(x) if i else x)
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(reversed(self.up), reversed(self.merge)):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


@register_model
def unet(**kwargs) -> UNet:
    """U-Net, base width 64 (about 31.0M parameters)."""
    return UNet(**kwargs)
