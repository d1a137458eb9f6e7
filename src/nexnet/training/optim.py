"""The optimizer: Adam, with T-PEN's coefficients in a group of their own."""

from __future__ import annotations

import torch
from torch import nn

from ..models.tpen import TPEN
from .run_config import TrainConfig


def tpen_coefficients(model: nn.Module) -> list[nn.Parameter]:
    """The trainable coefficient matrices of every T-PEN layer of ``model``."""
    return [m.coefficients for m in model.modules() if isinstance(m, TPEN) and isinstance(m.coefficients, nn.Parameter)]


def can_fuse(params: list[torch.Tensor]) -> bool:
    """Whether Adam's fused kernel takes ``params``: float tensors on CPU or CUDA. On CPU, PyTorch
    otherwise steps one tensor at a time (11.5 against 5.0 ms a step for ``nexnet_seg_s``'s 142
    tensors, 1 thread)."""
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)


def adam(params: list, **kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam`` over ``params`` (tensors or parameter groups), fused where
    :func:`can_fuse` says the kernel takes them; every optimizer of the project is built here."""
    tensors = [p for g in params for p in g["params"]] if params and isinstance(params[0], dict) else params
    return torch.optim.Adam(params, fused=can_fuse(tensors) or None, **kwargs)


def build_optimizer(model: nn.Module, tc: TrainConfig) -> tuple[torch.optim.Adam, list[torch.Tensor]]:
    """Adam over ``model``'s trainable parameters, and that list (for clipping).

    T-PEN coefficients learn at ``tc.tpen_lr_scale`` times the learning rate and with weight
    decay ``tc.tpen_weight_decay`` (None: the common ``weight_decay``): they are few, and at the
    common rate they barely leave their starting values (docs/training.md). Each group's
    ``lr_scale`` is applied by :meth:`Stepper.set_lr`.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]  # a frozen SSL encoder stays as loaded
    coefficients = {id(p) for p in tpen_coefficients(model) if p.requires_grad}
    decay = tc.weight_decay if tc.tpen_weight_decay is None else tc.tpen_weight_decay
    scale = float(tc.tpen_lr_scale)
    if not coefficients or (scale == 1.0 and tc.tpen_weight_decay is None):
        return adam(trainable, lr=tc.lr, weight_decay=tc.weight_decay), trainable
    groups = [
        {"params": [p for p in trainable if id(p) not in coefficients], "lr_scale": 1.0},
        {"params": [p for p in trainable if id(p) in coefficients], "lr_scale": scale, "weight_decay": decay},
    ]
    return adam(groups, lr=tc.lr, weight_decay=tc.weight_decay), trainable
