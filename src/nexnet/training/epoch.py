"""One training epoch: forward, loss, backward, clipping and the optimizer step, with diagnostics."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data import Batch
from ..runtime import autocast
from . import distributed as D
from .diagnostics import GradientNorms, TPENProbe
from .ema import WeightAverage


@dataclass
class Stepper:
    """What a training step needs.

    ``net`` runs the steps (possibly DDP-wrapped and compiled); ``eager_net`` is the same network
    without ``torch.compile``, used for the one batch per epoch on which T-PEN inputs are recorded
    (module hooks would make a compiled graph recompile). ``average``, when set, follows the weights
    after every optimizer step.
    """

    net: nn.Module
    eager_net: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    parameters: list[torch.Tensor]
    grad_clip: float | None
    amp: torch.dtype | None
    device: torch.device
    env: D.DistEnv
    probe: TPENProbe
    average: WeightAverage | None = None

    def set_lr(self, lr: float) -> None:
        """``lr`` for every parameter group, times the group's ``lr_scale`` (T-PEN coefficients)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)


def fit_epoch(s: Stepper, batches: Iterable[Batch], state: dict[str, Any]) -> dict[str, float]:
    """Train on ``batches`` once; returns the epoch's loss, skipped batches and diagnostics.

    A non-finite loss skips its step on every rank (counted as ``skipped_batches``).
    ``state["optimizer_steps"]`` counts the steps taken.
    """
    s.net.train()
    norms = GradientNorms(s.grad_clip)
    total, seen, skipped = 0.0, 0, 0
    start = time.time()
    for i, batch in enumerate(batches):
        if i == 0:
            with s.probe.recording(), autocast(s.amp, s.device):
                logits = s.eager_net(batch.images)
        else:
            with autocast(s.amp, s.device):
                logits = s.net(batch.images)
        loss = s.loss_fn(logits, batch.masks)
        if not D.all_agree(bool(torch.isfinite(loss)), s.env, s.device):
            skipped += 1
            continue
        s.optimizer.zero_grad(set_to_none=True)
        s.scaler.scale(loss).backward()
        s.scaler.unscale_(s.optimizer)
        norms.clip_and_record(s.parameters)
        s.scaler.step(s.optimizer)
        s.scaler.update()
        if s.average is not None:
            s.average.update()
        state["optimizer_steps"] += 1
        total += loss.item() * len(batch.index)
        seen += len(batch.index)
        if hasattr(batches, "set_postfix"):
            batches.set_postfix(loss=f"{total / seen:.4f}", img_s=f"{seen / (time.time() - start):.1f}")
    return {"train_loss": total / seen if seen else math.nan, "skipped_batches": skipped,
            **norms.summary(), **s.probe.take()}  # fmt: skip
