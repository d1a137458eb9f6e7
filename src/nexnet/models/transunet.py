"""TransUNet (Chen et al., 2021), the R50-ViT-B/16 hybrid with the cascaded upsampler.

Encoder: a ResNet-50 v2 stem and its first three stages (3, 4, 9 bottleneck units, weight-standardised
convolutions with group norm, as in ViT's hybrid), then a 12-layer ViT-B (768 wide, 12 heads, MLP 3072)
on the 1/16 feature map with 1x1 patches. Decoder: the cascaded upsampler with skips from the
ResNet at 1/8, 1/4 and 1/2, and a 3x3 segmentation head at full resolution. Position embeddings are
learnt for 224x224 (a 14x14 grid) and bilinearly interpolated for other sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SegmentationModel
from .blocks import DoubleConv
from .input_checks import check_image_batch
from .registry import register_model
from .upsample import upsample_bilinear


class StdConv2d(nn.Conv2d):
    """Convolution with weight standardisation (BiT / ViT-hybrid ResNets)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return F.conv2d(x, (w - mean) / torch.sqrt(var + 1e-5), self.bias, self.stride, self.padding)


class Bottleneck(nn.Module):
    """Pre-activation-free ResNet v2 bottleneck of the ViT hybrid: conv-GN-ReLU x3 with a projection."""

    def __init__(self, cin: int, cout: int, cmid: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.gn1 = StdConv2d(cin, cmid, 1, bias=False), nn.GroupNorm(32, cmid, eps=1e-6)
        self.conv2 = StdConv2d(cmid, cmid, 3, stride=stride, padding=1, bias=False)
        self.gn2 = nn.GroupNorm(32, cmid, eps=1e-6)
        self.conv3, self.gn3 = StdConv2d(cmid, cout, 1, bias=False), nn.GroupNorm(32, cout, eps=1e-6)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                StdConv2d(cin, cout, 1, stride=stride, bias=False), nn.GroupNorm(cout, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.downsample(x) if self.downsample is not None else x
        y = F.relu(self.gn1(self.conv1(x)))
        y = F.relu(self.gn2(self.conv2(y)))
        return F.relu(residual + self.gn3(self.conv3(y)))


class ResNetHybrid(nn.Module):
    """ResNet-50 root and stages 1-3. ``(B, 3, H, W) -> (B, 1024, H/16, W/16)`` plus skips at 1/8, 1/4, 1/2."""

    def __init__(self, in_channels: int = 3, units: tuple[int, ...] = (3, 4, 9)) -> None:
        super().__init__()
        self.root = nn.Sequential(StdConv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
                                  nn.GroupNorm(32, 64, eps=1e-6), nn.ReLU(inplace=True))  # fmt: skip
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, cin = [], 64
        for i, n in enumerate(units):
            cout, cmid = 256 * 2**i, 64 * 2**i
            blocks = [Bottleneck(cin, cout, cmid, stride=1 if i == 0 else 2)]
            blocks += [Bottleneck(cout, cout, cmid) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.root(x)
        skips = [x]  # 1/2, 64
        x = self.pool(x)
        for stage in self.stages:
            x = stage(x)
            skips.append(x)  # 1/4 256, 1/8 512, 1/16 1024
        return x, skips[:3][::-1]  # [1/8 512, 1/4 256, 1/2 64]


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, dim),
                                 nn.Dropout(dropout))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, skip: int) -> None:
        super().__init__()
        self.conv = DoubleConv(cin + skip, cout)  # the same layers (and weight names) as UNet's

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = upsample_bilinear(x, scale_factor=2)
        return self.conv(torch.cat([x, skip], 1) if skip is not None else x)


class TransUNet(SegmentationModel):
    """R50-ViT-B/16 TransUNet.

    Shapes: ``(B, in_channels, H, W)`` with H, W multiples of 16 -> ``(B, num_classes, H, W)``.
    """

    size_multiple = 16

    def __init__(self, in_channels: int = 3, num_classes: int = 1, hidden: int = 768, layers: int = 12,
                 heads: int = 12, mlp: int = 3072, dropout: float = 0.1, grid: int = 14,
                 decoder: tuple[int, ...] = (256, 128, 64, 16)) -> None:  # fmt: skip
        super().__init__()
        self.config = dict(in_channels=in_channels, num_classes=num_classes, hidden=hidden, layers=layers,
                           heads=heads, mlp=mlp, dropout=dropout, grid=grid, decoder=list(decoder))  # fmt: skip
        self.in_channels, self.grid = in_channels, grid
        self.backbone = ResNetHybrid(in_channels)
        self.patch = nn.Conv2d(1024, hidden, 1)
        self.pos = nn.Parameter(torch.zeros(1, grid * grid, hidden))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(ViTBlock(hidden, heads, mlp, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        self.conv_more = nn.Sequential(nn.Conv2d(hidden, 512, 3, padding=1, bias=False), nn.BatchNorm2d(512),
                                       nn.ReLU(inplace=True))  # fmt: skip
        skips = (512, 256, 64, 0)
        ins = (512, *decoder[:-1])
        self.decoder = nn.ModuleList(DecoderBlock(i, o, s) for i, o, s in zip(ins, decoder, skips))
        self.head = nn.Conv2d(decoder[-1], num_classes, 3, padding=1)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == (self.grid, self.grid):
            return self.pos
        pos = self.pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(h, w), mode="bilinear", align_corners=False)
        return pos.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, self.size_multiple, "TransUNet")
        feats, skips = self.backbone(x)
        tokens = self.patch(feats)  # (B, 768, H/16, W/16)
        b, c, h, w = tokens.shape
        t = self.drop(tokens.flatten(2).transpose(1, 2) + self.position_embedding(h, w))
        for block in self.blocks:
            t = block(t)
        y = self.conv_more(self.norm(t).transpose(1, 2).reshape(b, c, h, w))
        for block, skip in zip(self.decoder, [*skips, None]):
            y = block(y, skip)
        return self.head(y)


@register_model
def transunet(**kwargs) -> TransUNet:
    """TransUNet R50-ViT-B/16 (about 105M parameters at 224 px)."""
    return TransUNet(**kwargs)
