"""An exponential moving average of a model's weights, validated and saved in place of the weights."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """``average = d * average + (1 - d) * weights`` after every optimizer step, for every floating
    parameter and buffer (BatchNorm statistics included); integer buffers are copied.

    The decay ramps up as ``d_n = min(decay, (1 + n) / (10 + n))`` over the first updates ``n``, so
    that the average does not keep the random initialisation for thousands of steps.

    Args:
        model: the network being trained (not DDP- or compile-wrapped); copied once, and read at
            each :meth:`update`.
        decay: the final decay, in (0, 1); 0.999 averages over about the last 1000 steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0
        # Paired once: loading and stepping change these tensors in place, never replace them.
        pairs = list(zip(self._state(self.module), self._state(model)))
        self._averaged = [a for a, _ in pairs if a.is_floating_point()]
        self._current = [b for a, b in pairs if a.is_floating_point()]
        self._copied = [(a, b) for a, b in pairs if not a.is_floating_point()]

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, taken: torch.Tensor | None = None) -> None:
        """Move the average towards the source model's weights and buffers, once; where ``taken`` (a
        bool tensor: was the optimizer step taken?) is false, the floating tensors stay as they are,
        decided on the device."""
        targets = self._current if taken is None else [torch.where(taken, b, a) for a, b in
                                                         zip(self._averaged, self._current)]  # fmt: skip
        torch._foreach_lerp_(self._averaged, targets, 1.0 - self.current_decay())
        for a, b in self._copied:
            a.copy_(b)
        self.updates += 1

    @staticmethod
    def _state(model: nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
