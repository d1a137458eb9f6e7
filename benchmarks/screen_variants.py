"""NExNet Seg variants screened once in docs/training.md and not kept, trained with the real CLI.

They are not part of the library: each is a change that was measured and did not earn a keyword.
This file registers them as models and then runs ``nexnet`` with its arguments, so a screen uses
exactly the training, validation and run folders of ``nexnet train``:

    python benchmarks/screen_variants.py train --model screen_deep_supervision ...  (nexnet train flags)
    NEXNET="python benchmarks/screen_variants.py" ONLY='SV_.*' \\
        bash benchmarks/training_study.sh ../shared/datasets/kvasir_seg runs/study

Variants (all ``nexnet_seg_s`` in its default residual form, changed as named):
- ``screen_single_conv_decoder``: the projected decoder with one Conv-BN-ReLU per level instead of
  the DoubleConv (a cheaper step).
- ``screen_deep_supervision``: 1x1 heads on the decoder outputs at 1/2, 1/4 and 1/8 resolution,
  trained against the average-pooled masks with weights 1/2, 1/4, 1/8 beside the main output's 1
  (normalised to sum to 1), as nnU-Net does; the heads are used in training only.
- ``screen_drop_path``: stochastic depth on the residual branches of each level (the DoubleConv, and
  the attention at levels 3 to 6, where the residual form has it), at a rate rising linearly from 0
  at level 1 to 0.2 at level 6, as RMT does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nexnet.cli import main  # noqa: E402
from nexnet.models.nexnet_seg import NExNetSeg, nexnet_seg_s  # noqa: E402
from nexnet.models.registry import register_model  # noqa: E402
from nexnet.training import trainer  # noqa: E402
from nexnet.training.losses import DiceBCELoss  # noqa: E402

HALF_WIDTHS = (16, 32, 64, 128, 128, 256)


@register_model
def screen_single_conv_decoder(**kwargs) -> NExNetSeg:
    model = nexnet_seg_s(**{"decoder_projection": True, **kwargs})
    for j, block in enumerate(model.decoder):
        conv = block[0]
        model.decoder[j] = nn.Sequential(
            nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(conv.out_channels),
            nn.ReLU(inplace=True),
        )
    return model


# Deep supervision. The training loop calls loss_fn(logits, masks) with the main logits only, so the
# model leaves its auxiliary logits here and the loss takes them (validation runs in eval mode: none).
AUXILIARY_LOGITS: list[torch.Tensor] = []


class DeepSupervisedNExNetSeg(NExNetSeg):
    """NExNet Seg with 1x1 heads on the decoder outputs at 1/2, 1/4 and 1/8 resolution (training only)."""

    def __init__(self, aux_levels: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.decoded: list[torch.Tensor] = []
        for block in self.decoder:
            block.register_forward_hook(lambda _m, _i, out: self.decoded.append(out) if self.training else None)
        widths = list(reversed(self.config["widths"][:-1]))  # the decoder's output widths, coarse to fine
        self.aux_heads = nn.ModuleList(nn.Conv2d(widths[-1 - k], 1, 1) for k in range(1, aux_levels + 1))

    def forward(self, x: torch.Tensor, ssl_embedding: torch.Tensor | None = None) -> torch.Tensor:
        self.decoded.clear()
        logits = super().forward(x, ssl_embedding)
        if self.training:
            AUXILIARY_LOGITS[:] = [head(self.decoded[-1 - k]) for k, head in enumerate(self.aux_heads, 1)]
        self.decoded.clear()
        return logits


class DeepSupervisionLoss(DiceBCELoss):
    """``(L(main) + sum_k 2^-k L(aux_k, avgpool(masks))) / (1 + sum_k 2^-k)``; the main loss alone
    when there are no auxiliary logits."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total, weights = super().forward(logits, targets), 1.0
        for k, aux in enumerate(AUXILIARY_LOGITS, 1):
            total = total + 0.5**k * super().forward(aux, F.adaptive_avg_pool2d(targets, aux.shape[-2:]))
            weights += 0.5**k
        AUXILIARY_LOGITS.clear()
        return total / weights


@register_model
def screen_deep_supervision(**kwargs) -> NExNetSeg:
    trainer.DiceBCELoss = DeepSupervisionLoss  # the run's loss function takes the auxiliary logits
    return DeepSupervisedNExNetSeg(**{"widths": HALF_WIDTHS, **kwargs})


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability ``rate``, rescaling the rest."""
    if not training or rate <= 0:
        return x
    keep = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= rate).to(x.dtype)
    return x * keep / (1 - rate)


class DroppedBranch(nn.Module):
    """``drop_path(inner(x))``: the residual DoubleConv's branch, whose sum with ``x`` ConvMaSA takes."""

    def __init__(self, inner: nn.Module, rate: float) -> None:
        super().__init__()
        self.inner, self.rate = inner, rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(self.inner(x), self.rate, self.training)


class DroppedResidual(nn.Module):
    """``x + drop_path(inner(x) - x)`` for a block ``inner(x) = x + branch(x)`` (MaSA)."""

    def __init__(self, inner: nn.Module, rate: float) -> None:
        super().__init__()
        self.inner, self.rate = inner, rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + drop_path(self.inner(x) - x, self.rate, self.training)


@register_model
def screen_drop_path(rate: float = 0.2, **kwargs) -> NExNetSeg:
    model = nexnet_seg_s(**kwargs)
    last = len(model.encoder) - 1
    for i, block in enumerate(model.encoder):
        level_rate = rate * i / last
        block.conv_masa.conv = DroppedBranch(block.conv_masa.conv, level_rate)
        if not isinstance(block.conv_masa.attention, nn.Identity):
            block.conv_masa.attention = DroppedResidual(block.conv_masa.attention, level_rate)
    return model


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
