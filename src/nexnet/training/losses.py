"""Dice + BCE-with-logits, with ``pos_weight`` from the training masks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def positive_weight(masks: np.ndarray, chunk: int = 256) -> float:
    """Background/foreground pixel ratio of ``masks`` (uint8 0/1, any shape), in chunks."""
    fg = total = 0
    for start in range(0, len(masks), chunk):
        part = np.asarray(masks[start : start + chunk])
        fg += int(part.sum(dtype=np.int64))
        total += part.size
    return (total - fg) / max(fg, 1)


class DiceBCELoss(nn.Module):
    """``bce_weight * BCEWithLogits(pos_weight) + dice_weight * (1 - soft Dice)``.

    Soft Dice is computed per image and averaged, with a smoothing of 1 so that empty masks give
    a finite loss. Shapes: logits and targets ``(B, 1, H, W)``.
    """

    def __init__(self, pos_weight: float = 1.0, bce_weight: float = 1.0, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("pos_weight", torch.tensor([float(pos_weight)]))
        self.bce_weight, self.dice_weight = bce_weight, dice_weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        bce = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)
        probs = torch.sigmoid(logits).flatten(1)
        t = targets.flatten(1)
        dice = (2 * (probs * t).sum(1) + 1) / (probs.sum(1) + t.sum(1) + 1)
        return self.bce_weight * bce + self.dice_weight * (1 - dice.mean())
