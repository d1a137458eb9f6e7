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

    A non-finite loss skips its step on every rank (counted as ``skipped_batches``), decided on the
    device as GradScaler decides an overflow: with the fused optimizer, no step waits for the host.
    The loss sum and counts stay on the device and are read once, at the end (the bar reads them
    every ``SHOW_EVERY`` steps). ``state["optimizer_steps"]`` counts the steps taken.
    """
    s.net.train()
    norms = GradientNorms(s.grad_clip)
    sums = torch.zeros(3, dtype=torch.float64, device=s.device)  # loss x images, images, steps taken
    batches_seen, start = 0, time.time()
    for i, batch in enumerate(batches):
        if i == 0:
            with s.probe.recording(), autocast(s.amp, s.device):
                logits = s.eager_net(batch.images)
        else:
            with autocast(s.amp, s.device):
                logits = s.net(batch.images)
        loss = s.loss_fn(logits, batch.masks)
        finite = D.all_finite(torch.isfinite(loss.detach()), s.env)
        _step(s, loss, finite, norms)
        n = len(batch.index)
        taken = finite.to(torch.float64)
        sums += torch.stack([torch.where(finite, loss.detach().double() * n, 0.0), taken * n, taken])
        batches_seen += 1
        if hasattr(batches, "set_postfix") and batches_seen % SHOW_EVERY == 0:
            loss_sum, seen, _ = sums.tolist()
            batches.set_postfix(loss=f"{loss_sum / max(seen, 1):.4f}", img_s=f"{seen / (time.time() - start):.1f}")
    loss_sum, seen, steps = sums.tolist()
    state["optimizer_steps"] += int(steps)
    return {"train_loss": loss_sum / seen if seen else math.nan, "skipped_batches": batches_seen - int(steps),
            **norms.summary(), **s.probe.take()}  # fmt: skip


SHOW_EVERY = 25  # steps between the progress bar's loss readings (each one waits for the device)


def _step(s: Stepper, loss: torch.Tensor, finite: torch.Tensor, norms: GradientNorms) -> None:
    """Backward, clipping and the optimizer step, skipped on the device where ``finite`` is false
    (the fused kernel's ``found_inf``); an optimizer without it asks the host instead."""
    device_skip = getattr(s.optimizer, "_step_supports_amp_scaling", False)
    if not device_skip and not bool(finite):
        return
    s.optimizer.zero_grad(set_to_none=True)
    s.scaler.scale(loss).backward()
    s.scaler.unscale_(s.optimizer)
    norms.clip_and_record(s.parameters)
    if device_skip and not s.scaler.is_enabled():  # GradScaler passes its own found_inf when enabled
        s.optimizer.found_inf = (~finite).to(torch.float32)
    try:
        s.scaler.step(s.optimizer)
    finally:
        s.optimizer.__dict__.pop("found_inf", None)
    s.scaler.update()
    if s.average is not None:
        s.average.update(finite)
