"""Loading a checkpoint and turning images into probabilities, at network or original size."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models import from_pretrained
from ..models.base import read_config
from ..runtime import place_model
from .distributed import autocast, autocast_dtype


@dataclass
class Predictor:
    """A model with what it needs to run: input size, device, threshold and precision."""

    model: torch.nn.Module
    image_size: int
    device: torch.device
    threshold: float = 0.5
    checkpoint: str = ""
    amp: torch.dtype | None = None

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto", fast_layout: bool = True,
             amp: bool | str = False) -> Predictor:  # fmt: skip
        """``fast_layout``: channels_last weights where the model prefers them (off for export).
        ``amp``: autocast, as ``train.amp`` (bf16 on CPU; bf16 or fp16 on CUDA)."""
        cfg = read_config(checkpoint)  # refuses pickles and malformed folders with one line
        dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                           ("cpu" if device == "auto" else device))  # fmt: skip
        model = place_model(from_pretrained(checkpoint), dev, fast_layout).eval()
        return cls(model, int(cfg.get("image_size", 224)), dev, float(cfg.get("threshold", 0.5)), str(checkpoint),
                   autocast_dtype(amp, dev))  # fmt: skip

    @property
    def precision(self) -> str:
        return "float32" if self.amp is None else f"{str(self.amp).removeprefix('torch.')} autocast"

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, batch_size: int = 8, tta: bool = False) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 at network size -> ``(N, S, S)`` float32 foreground probabilities.

        With ``tta`` the probabilities are averaged over identity, horizontal, vertical and both flips.
        """
        out = []
        with autocast(self.amp, self.device):  # one region: weights are cast to bf16 once, not per batch
            for start in range(0, len(images), batch_size):
                x = torch.from_numpy(np.array(images[start : start + batch_size], copy=True))
                x = x.to(self.device).permute(0, 3, 1, 2).float().div_(255)
                flips: Iterable[tuple[int, ...]] = [(), (3,), (2,), (2, 3)] if tta else [()]
                acc = torch.zeros(x.shape[0], 1, *x.shape[2:], device=self.device)
                for dims in flips:
                    p = torch.sigmoid(self.model(x.flip(dims) if dims else x).float()[:, :1])
                    acc += p.flip(dims) if dims else p
                out.append((acc / len(flips))[:, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size), np.float32)


def resize_input(image: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 image resized as the training cache resizes (Pillow bilinear)."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def to_original_size(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a probability map back to the image's original size."""
    t = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def run_dir_of(checkpoint: str | Path) -> Path | None:
    """The training run folder holding ``checkpoint`` (``RUN/best``), if it is one."""
    parent = Path(checkpoint).resolve().parent
    return parent if (parent / "split.json").is_file() and (parent / "config.yaml").is_file() else None
