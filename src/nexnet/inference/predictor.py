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
from ..models.base import checkpoint_folder
from ..models.checkpoint import Checkpoint
from ..runtime import autocast, autocast_dtype, pick_device, place_model, precision_name
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
    def load(cls, checkpoint: str | Path | Checkpoint, device: str = "auto", fast_layout: bool = True,
             amp: bool | str = False, graphs: bool = True) -> Predictor:  # fmt: skip
        """A checkpoint folder's model, ready to predict.

        Args:
            checkpoint: a ``save_pretrained`` folder, or its :class:`~nexnet.models.checkpoint.Checkpoint`.
            device: ``auto`` (CUDA if present), ``cpu`` or ``cuda``.
            fast_layout: channels_last weights where the model prefers them (off for export).
            amp: autocast, as ``train.amp`` (bf16 on CPU; bf16 or fp16 on CUDA).
            graphs: replay captured CUDA graphs on CUDA (the CPU always runs eagerly).

        Raises:
            NexnetError: a pickle, a malformed folder, an SSL autoencoder, or a bad image size or
                threshold in its ``config.json``, in one line.
        """
        record = Checkpoint.read(checkpoint)  # refuses pickles and malformed folders with one line
        if record.name == "ssl_autoencoder":
            raise NexnetError(f"{record.path}: holds the SSL pretraining autoencoder, not a segmentation model; "
                              "fine-tune one with train --ssl-checkpoint")  # fmt: skip
        dev = pick_device(device)
        model = place_model(record.build(), dev, fast_layout).eval()
        size, threshold = _checked_settings(record, model.size_multiple)
        source = record.path if isinstance(checkpoint, Checkpoint) else checkpoint
        return cls(model, size, dev, threshold, str(source), autocast_dtype(amp, dev), graphs)

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, device: str = "auto", amp: bool | str = False,
                        graphs: bool = True) -> Predictor:  # fmt: skip
        """What ``nexnet predict`` runs, for Python: ``Predictor.from_pretrained("runs/x/best")(image)``
        gives the mask.

        Args:
            checkpoint: a checkpoint folder; a run folder stands for its ``best/``.
            device: ``auto`` (CUDA if present), ``cpu`` or ``cuda``.
            amp: autocast, as ``train.amp``.
            graphs: replay captured CUDA graphs on CUDA.

        Raises:
            NexnetError: as :meth:`load`.
        """
        return cls.load(checkpoint_folder(checkpoint)[0], device, amp=amp, graphs=graphs)

    def __call__(self, image: np.ndarray | Image.Image | str | Path, tta: bool = False) -> np.ndarray:
        """The mask of one image, as ``nexnet predict`` writes it: resized to the model's input size,
        thresholded at the checkpoint's threshold, at the image's own size.

        Args:
            image: an ``(H, W, 3)`` uint8 RGB array, a PIL image or an image file, of any size.
            tta: average the probabilities over the four flips first.

        Returns:
            An ``(H, W)`` bool mask.

        Raises:
            NexnetError: an array of another shape or dtype, or a file that is not a readable image.
        """
        return predict_mask(self, as_rgb(image), tta)

    @property
    def precision(self) -> str:
        return precision_name(self.amp)

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
        """Foreground probabilities of images already at network size.

        Args:
            images: ``(N, S, S, 3)`` uint8, ``S`` the predictor's ``image_size``.
            batch_size: images per forward pass.
            tta: average over identity, horizontal, vertical and both flips.

        Returns:
            ``(N, S, S)`` float32 in [0, 1].
        """
        out = []
        with autocast(self.amp, self.device):  # one region: weights are cast to bf16 once, not per batch
            for start in range(0, len(images), batch_size):
                x = to_model_input(images[start : start + batch_size], self.device)
                p = averaged_over_flips(self.forward, x, tta, lambda t, dims: t.flip(dims))
                out.append(p[:, 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size), np.float32)


def _checked_settings(record: Checkpoint, multiple: int) -> tuple[int, float]:
    """A checkpoint's input size and threshold, or one line naming the bad value."""
    size, threshold, where = record.image_size, record.threshold, record.config_file
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
    return mask_at_size(prob, *image.shape[:2], pred.threshold)


def mask_at_size(prob: np.ndarray, height: int, width: int, threshold: float) -> np.ndarray:
    """A network-size ``(S, S)`` probability map -> the ``(height, width)`` bool mask: bilinear to the
    image's own size, then above ``threshold`` (the one rule of ``predict``, ``evaluate`` and ``serve``)."""
    return to_original_size(prob, height, width) > threshold


def to_original_size(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a probability map back to the image's original size."""
    t = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()
