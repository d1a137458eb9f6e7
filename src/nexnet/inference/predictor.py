"""Loading a checkpoint and turning images into probabilities, at network or original size."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data import read_image, resize_image, to_model_input
from ..errors import NexnetError
from ..models import from_pretrained
from ..models.base import checkpoint_folder, read_config
from ..runtime import autocast, autocast_dtype, pick_device, place_model
from .graphs import GraphedForward
from .tta import averaged_over_flips


@dataclass
class Predictor:
    """A model with what it needs to run: input size, device, threshold and precision.

    ``graphs``: on CUDA, replay one captured CUDA graph per batch shape instead of launching the
    forward's kernels one by one (issue 15: batch 1 is launch-bound); ignored on CPU.
    """

    model: torch.nn.Module
    image_size: int
    device: torch.device
    threshold: float = 0.5
    checkpoint: str = ""
    amp: torch.dtype | None = None
    graphs: bool = True
    _graphed: dict[tuple[int, ...], GraphedForward] = field(default_factory=dict, init=False, repr=False)

    def __repr__(self) -> str:  # one line, not the whole network
        name = getattr(self.model, "model_name", type(self.model).__name__)
        return (f"Predictor({name}, {self.image_size}px, {self.device}, threshold {self.threshold:g}, "
                f"{self.precision}, checkpoint {self.checkpoint!r})")  # fmt: skip

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto", fast_layout: bool = True,
             amp: bool | str = False, graphs: bool = True) -> Predictor:  # fmt: skip
        """``fast_layout``: channels_last weights where the model prefers them (off for export).
        ``amp``: autocast, as ``train.amp`` (bf16 on CPU; bf16 or fp16 on CUDA).
        ``graphs``: replay captured CUDA graphs on CUDA (the CPU always runs eagerly)."""
        cfg = read_config(checkpoint)  # refuses pickles and malformed folders with one line
        if cfg["model"] == "ssl_autoencoder":
            raise NexnetError(f"{checkpoint}: holds the SSL pretraining autoencoder, not a segmentation model; "
                              "fine-tune one with train --ssl-checkpoint")  # fmt: skip
        dev = pick_device(device)
        model = place_model(from_pretrained(checkpoint), dev, fast_layout).eval()
        size, threshold = _checked_settings(cfg, model.size_multiple, Path(checkpoint) / "config.json")
        return cls(model, size, dev, threshold, str(checkpoint), autocast_dtype(amp, dev), graphs)

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, device: str = "auto", amp: bool | str = False,
                        graphs: bool = True) -> Predictor:  # fmt: skip
        """What ``nexnet predict`` runs, for Python: ``Predictor.from_pretrained("runs/x/best")(image)``
        gives the mask. A run folder stands for its ``best/``."""
        return cls.load(checkpoint_folder(checkpoint)[0], device, amp=amp, graphs=graphs)

    def __call__(self, image: np.ndarray | Image.Image | str | Path, tta: bool = False) -> np.ndarray:
        """An RGB image of any size (an ``(H, W, 3)`` uint8 array, a PIL image or a file) -> its ``(H, W)``
        bool mask, as ``nexnet predict`` writes it: resized to the model's input size, thresholded at
        the checkpoint's threshold, at the image's own size."""
        return predict_mask(self, as_rgb(image), tta)

    @property
    def precision(self) -> str:
        return "float32" if self.amp is None else f"{str(self.amp).removeprefix('torch.')} autocast"

    @property
    def uses_graphs(self) -> bool:
        return self.graphs and self.device.type == "cuda"

    def eager_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground probabilities ``(B, 1, S, S)`` float32 of a network-size batch."""
        return torch.sigmoid(self.model(x).float()[:, :1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``eager_forward``, replayed from a graph captured at the first batch of this shape when graphs are on.
        A graph's result is overwritten by its next replay: the caller uses it at once."""
        if not self.uses_graphs:
            return self.eager_forward(x)
        key = tuple(x.shape)
        if key not in self._graphed:
            try:
                self._graphed[key] = GraphedForward(self.eager_forward, x, self.amp)
            except RuntimeError as e:  # an op that cannot be captured: stay correct, run eagerly
                warnings.warn(f"CUDA graph capture failed ({e}); running eagerly", stacklevel=3)
                self.graphs = False
                return self.eager_forward(x)
        return self._graphed[key](x)

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, batch_size: int = 8, tta: bool = False) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 at network size -> ``(N, S, S)`` float32 foreground probabilities.

        With ``tta`` the probabilities are averaged over identity, horizontal, vertical and both flips.
        """
        out = []
        with autocast(self.amp, self.device):  # one region: weights are cast to bf16 once, not per batch
            for start in range(0, len(images), batch_size):
                x = to_model_input(images[start : start + batch_size], self.device)
                p = averaged_over_flips(self.forward, x, tta, lambda t, dims: t.flip(dims))
                out.append(p[:, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size), np.float32)


def _checked_settings(cfg: dict, multiple: int, where: Path) -> tuple[int, float]:
    """A checkpoint's input size and threshold, or one line naming the bad value."""
    size, threshold = cfg.get("image_size", 224), cfg.get("threshold", 0.5)
    if isinstance(size, bool) or not isinstance(size, int) or size < multiple or size % multiple:
        raise NexnetError(f"{where}: image_size {size!r} must be a multiple of {multiple} (the size the model "
                          "was trained at)")  # fmt: skip
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise NexnetError(f"{where}: threshold {threshold!r} must be a number between 0 and 1")
    return size, float(threshold)


def as_rgb(image: np.ndarray | Image.Image | str | Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 from an array, a PIL image or an image file."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    array = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise NexnetError(f"image: expected an (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}; "
                          "pass a PIL image or a file path to have it converted")  # fmt: skip
    return array


def predict_mask(pred: Predictor, image: np.ndarray, tta: bool = False) -> np.ndarray:
    """The ``(H, W)`` bool mask of an ``(H, W, 3)`` uint8 image; ``pred``: a ``Predictor`` or anything
    with its ``probabilities``, ``image_size`` and ``threshold`` (the ONNX predictor)."""
    prob = pred.probabilities(resize_image(image, pred.image_size)[None], tta=tta)[0]
    return to_original_size(prob, *image.shape[:2]) > pred.threshold


def to_original_size(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a probability map back to the image's original size."""
    t = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def run_dir_of(checkpoint: str | Path) -> Path | None:
    """The training run folder holding ``checkpoint`` (``RUN/best``), if it is one."""
    parent = Path(checkpoint).resolve().parent
    return parent if (parent / "split.json").is_file() and (parent / "config.yaml").is_file() else None
