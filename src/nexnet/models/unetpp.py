"""UNet++ (Zhou, Siddiquee, Tajbakhsh and Liang, DLMIA 2018): nested, densely connected skips.

As in the authors' reference configuration: widths 32-64-128-256-512, (conv-BN-ReLU) x2 blocks,
bilinear 2x upsampling. Deep supervision averages the four heads' logits (``deep_supervision=True``).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SegmentationModel
from .blocks import DoubleConv
from .input_checks import check_image_batch
from .registry import register_model
from .upsample import upsample_bilinear


class UNetPlusPlus(SegmentationModel):
    """Nodes ``X[i][j]`` (depth ``i``, ``j`` skip hops): ``X[i][j] = conv(cat(X[i][0..j-1], up(X[i+1][j-1])))``.

    Shapes: ``(B, in_channels, H, W)`` with H, W multiples of 16 -> ``(B, num_classes, H, W)``.
    """

    size_multiple = 16

    def __init__(self, base_width: int = 32, in_channels: int = 3, num_classes: int = 1,
                 deep_supervision: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.config = dict(base_width=base_width, in_channels=in_channels, num_classes=num_classes,
                           deep_supervision=deep_supervision)  # fmt: skip
        self.in_channels, self.deep_supervision = in_channels, deep_supervision
        w = [base_width * 2**i for i in range(5)]
        self.nodes = nn.ModuleDict()
        for i in range(5):  # backbone column j = 0
            self.nodes[f"{i}_0"] = DoubleConv(in_channels if i == 0 else w[i - 1], w[i])
        for j in range(1, 5):
            for i in range(5 - j):
                self.nodes[f"{i}_{j}"] = DoubleConv(w[i] * j + w[i + 1], w[i])
        self.pool = nn.MaxPool2d(2)
        self.heads = nn.ModuleList(nn.Conv2d(w[0], num_classes, 1) for _ in range(4 if deep_supervision else 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, self.size_multiple, "UNetPlusPlus")
        grid: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(5):
            grid[i, 0] = self.nodes[f"{i}_0"](x if i == 0 else self.pool(grid[i - 1, 0]))
        for j in range(1, 5):
            for i in range(5 - j):
                below = grid[i + 1, j - 1]
                up = upsample_bilinear(below, scale_factor=2)
                grid[i, j] = self.nodes[f"{i}_{j}"](torch.cat([*(grid[i, k] for k in range(j)), up], dim=1))
        if self.deep_supervision:
            return torch.stack([h(grid[0, j + 1]) for j, h in enumerate(self.heads)]).mean(0)
        return self.heads[0](grid[0, 4])


@register_model
def unetpp(**kwargs) -> UNetPlusPlus:
    """UNet++, base width 32 (about 9.0M parameters)."""
    return UNetPlusPlus(**kwargs)
