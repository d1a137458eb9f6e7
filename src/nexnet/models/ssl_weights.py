"""Weights from a pretrained SSL autoencoder: its checkpoint folder, and its encoder copied into NExNet Seg.

Whether a pretraining may be used at all (it never read a held-out image) is the training layer's
check (``training/ssl_checkpoint.py``); this module only moves weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import NexnetError
from .base import from_pretrained


def ssl_folder(checkpoint: str | Path) -> Path:
    """The autoencoder's checkpoint folder: a pretrain run folder stands for its ``best/``."""
    path = Path(checkpoint)
    return path / "best" if (path / "best" / "config.json").is_file() else path


def load_ssl_encoder(model: torch.nn.Module, checkpoint: str | Path) -> None:
    """Copy a pretrained autoencoder's encoder into ``model``, a NExNet Seg built with ``ssl=True``."""
    if getattr(model, "ssl_encoder", None) is None:
        raise NexnetError("--ssl-checkpoint needs a model built with ssl=True (NExNet Seg)")
    ae = from_pretrained(ssl_folder(checkpoint))
    if getattr(ae, "model_name", "") != "ssl_autoencoder":
        raise NexnetError(f"--ssl-checkpoint {checkpoint}: holds a {ae.model_name}, not an ssl_autoencoder")
    model.ssl_encoder.load_state_dict(ae.encoder.state_dict())
