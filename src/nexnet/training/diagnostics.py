"""Training diagnostics cheap enough to stay on: gradient norms per epoch, T-PEN inputs per level.

Both end up as columns of ``log.csv`` and panels of ``curves.png``:

- ``grad_norm_median``, ``grad_norm_max``: the global gradient norm before clipping, over the
  epoch's optimizer steps; ``clipped_fraction``: the fraction of those steps that clipping scaled.
- ``tpen{i}_p999``, ``tpen{i}_clamped``: for NEx level ``i``, the 99.9th percentile of the T-PEN
  layer's input magnitude and the fraction of its values that the layer clamps, from one sampled
  training batch per epoch (the epoch's first).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..models.tpen import TPEN

QUANTILE_SAMPLE = 1 << 20  # torch.quantile sorts: subsample large maps with a fixed stride


class GradientNorms:
    """Collects the pre-clipping gradient norm of each optimizer step of an epoch."""

    def __init__(self, clip: float | None) -> None:
        self.clip = clip
        self.norms: list[torch.Tensor] = []  # kept on the device: no synchronisation per step

    def clip_and_record(self, parameters: list[torch.Tensor]) -> None:
        """Clip ``parameters``' gradients to ``clip`` (if set) and record the norm before clipping."""
        max_norm = self.clip if self.clip else float("inf")
        self.norms.append(torch.nn.utils.clip_grad_norm_(parameters, max_norm).detach())

    def summary(self) -> dict[str, float]:
        """Median and maximum norm, and the fraction of steps clipping scaled, over the steps with a
        finite norm (nan without any)."""
        norms = torch.stack(self.norms).float().cpu().numpy() if self.norms else np.zeros(0)
        norms = norms[np.isfinite(norms)]  # an fp16 overflow: GradScaler skips that step
        if not len(norms):
            return dict.fromkeys(("grad_norm_median", "grad_norm_max", "clipped_fraction"), float("nan"))
        clipped = float(np.mean(norms > self.clip)) if self.clip else 0.0
        return {"grad_norm_median": float(np.median(norms)), "grad_norm_max": float(norms.max()),
                "clipped_fraction": clipped}  # fmt: skip


def input_stats(x: torch.Tensor, clip: float | None) -> tuple[float, float]:
    """The 99.9th percentile of ``|x|`` and the fraction of ``|x| > clip`` (0 when ``clip`` is None)."""
    flat = x.detach().abs().flatten().float()
    sample = flat[:: max(1, flat.numel() // QUANTILE_SAMPLE)]
    p999 = float(torch.quantile(sample, 0.999))
    clamped = float((flat > clip).float().mean()) if clip is not None else 0.0
    return p999, clamped


class TPENProbe:
    """Records each T-PEN layer's input statistics during one forward pass of ``model``.

    Levels are numbered 1.. in module order (NExNet Seg's encoder order). Models without T-PEN
    give no columns.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, TPEN)]
        self.stats: dict[str, float] = {}

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Hooks every T-PEN layer for the forward passes inside the ``with`` block."""
        handles = [layer.register_forward_pre_hook(self._hook(i + 1)) for i, layer in enumerate(self.layers)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _hook(self, level: int):  # noqa: ANN202 - a forward pre-hook
        def record(layer: TPEN, inputs: tuple[torch.Tensor, ...]) -> None:
            clip = layer.clip if layer.order > 1 else None  # the plain neuron clamps nothing
            p999, clamped = input_stats(inputs[0], clip)
            self.stats[f"tpen{level}_p999"], self.stats[f"tpen{level}_clamped"] = p999, clamped

        return record

    def take(self) -> dict[str, float]:
        """The last recorded statistics, then cleared."""
        stats, self.stats = self.stats, {}
        return stats
