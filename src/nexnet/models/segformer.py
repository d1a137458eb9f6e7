"""SegFormer (Xie et al., NeurIPS 2021): the Mix Transformer (MiT) encoder and the all-MLP decoder.

Overlapping patch embeddings (7x7 stride 4, then 3x3 stride 2), efficient self-attention with
spatial reduction, Mix-FFN with a 3x3 depthwise convolution, and a decoder that projects each
stage to one width, upsamples to 1/4, fuses with a 1x1 convolution and predicts. The logits are
upsampled bilinearly to the input size (the paper stops at 1/4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import SegmentationModel
from .input_checks import check_image_batch
from .registry import register_model

VARIANTS = {  # widths, depths, decoder width (the paper's Table 6)
    "b0": ((32, 64, 160, 256), (2, 2, 2, 2), 256),
    "b1": ((64, 128, 320, 512), (2, 2, 2, 2), 256),
    "b2": ((64, 128, 320, 512), (3, 4, 6, 3), 768),
    "b3": ((64, 128, 320, 512), (3, 4, 18, 3), 768),
    "b4": ((64, 128, 320, 512), (3, 8, 27, 3), 768),
    "b5": ((64, 128, 320, 512), (3, 6, 40, 3), 768),
}
HEADS, SR_RATIOS = (1, 2, 5, 8), (8, 4, 2, 1)


class OverlapPatchEmbed(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, kernel, stride, kernel // 2)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        _, _, h, w = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientAttention(nn.Module):
    """Multi-head attention whose keys and values come from a map reduced ``sr`` times per side."""

    def __init__(self, dim: int, heads: int, sr: int) -> None:
        super().__init__()
        self.heads, self.sr = heads, sr
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        if sr > 1:
            self.reduce, self.norm = nn.Conv2d(dim, dim, sr, sr), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        src = x
        if self.sr > 1:
            src = self.reduce(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
            src = self.norm(src)
        k, v = self.kv(src).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        y = self.fc1(x)
        b, n, c = y.shape
        y = self.dw(y.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(y))


class MiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, sr: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.ffn = EfficientAttention(dim, heads, sr), MixFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


class SegFormer(SegmentationModel):
    """MiT encoder + all-MLP decoder. Shapes: ``(B, C, H, W)``, H, W multiples of 32 -> ``(B, classes, H, W)``."""

    prefers_channels_last = False  # its token reshapes copy channels_last maps: 11% slower on CPU

    def __init__(self, widths: Sequence[int] = (32, 64, 160, 256), depths: Sequence[int] = (2, 2, 2, 2),
                 decoder_width: int = 256, in_channels: int = 3, num_classes: int = 1,
                 dropout: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        widths, depths = [int(w) for w in widths], [int(d) for d in depths]
        self.config = dict(widths=widths, depths=depths, decoder_width=decoder_width, in_channels=in_channels,
                           num_classes=num_classes, dropout=dropout)  # fmt: skip
        self.in_channels = in_channels
        ins = [in_channels, *widths[:-1]]
        self.embeds = nn.ModuleList(
            OverlapPatchEmbed(i, o, 7 if s == 0 else 3, 4 if s == 0 else 2) for s, (i, o) in enumerate(zip(ins, widths))
        )
        self.stages = nn.ModuleList(
            nn.ModuleList(MiTBlock(w, HEADS[s], SR_RATIOS[s]) for _ in range(d))
            for s, (w, d) in enumerate(zip(widths, depths))
        )
        self.norms = nn.ModuleList(nn.LayerNorm(w) for w in widths)
        self.project = nn.ModuleList(nn.Linear(w, decoder_width) for w in widths)
        self.fuse = nn.Sequential(nn.Conv2d(4 * decoder_width, decoder_width, 1, bias=False),
                                  nn.BatchNorm2d(decoder_width), nn.ReLU(inplace=True))  # fmt: skip
        self.drop = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(decoder_width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.in_channels, self.size_multiple, "SegFormer")
        size = x.shape[-2:]
        feats = []
        for embed, blocks, norm in zip(self.embeds, self.stages, self.norms):
            t, h, w = embed(x)
            for block in blocks:
                t = block(t, h, w)
            x = norm(t).transpose(1, 2).reshape(t.shape[0], -1, h, w)
            feats.append(x)
        quarter = feats[0].shape[-2:]
        maps = []
        for f, proj in zip(feats, self.project):
            m = proj(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(f.shape[0], -1, *f.shape[-2:])
            maps.append(F.interpolate(m, size=quarter, mode="bilinear", align_corners=False))
        logits = self.head(self.drop(self.fuse(torch.cat(maps[::-1], 1))))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _variant(name: str):  # noqa: ANN202
    widths, depths, dec = VARIANTS[name]

    def build(**kwargs) -> SegFormer:
        return SegFormer(**{"widths": widths, "depths": depths, "decoder_width": dec, **kwargs})

    build.__name__ = f"segformer_{name}"
    build.__doc__ = f"SegFormer-{name.upper()}: MiT-{name.upper()} encoder, decoder width {dec}."
    return build


for _name in VARIANTS:
    register_model(_variant(_name))
