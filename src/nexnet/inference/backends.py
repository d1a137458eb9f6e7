"""The runtime that runs a model: PyTorch (a checkpoint), onnxruntime (``--onnx FILE``) or OpenVINO
(``--openvino DIR``), behind one interface (``probabilities``, ``image_size``, ``threshold``,
``precision``, ``device``), chosen once for ``predict``, ``evaluate`` and ``serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import NexnetError
from ..models.checkpoint import Checkpoint
from .predictor import Predictor


def load_predictor(checkpoint: str | Path | Checkpoint | None = None, onnx: str | Path | None = None,
                   openvino: str | Path | None = None, device: str = "auto", amp: bool | str = False,
                   graphs: bool = True) -> Any:  # fmt: skip
    """The predictor of an exported model (``onnx`` or ``openvino``), else of ``checkpoint``.

    Raises:
        NexnetError: none given, both exports given, or ``amp`` with an export (it runs in the
            precision it was exported in).
    """
    if onnx is not None and openvino is not None:
        raise NexnetError("--onnx and --openvino: give one exported model")
    if (onnx is not None or openvino is not None) and amp:
        raise NexnetError("--amp applies to --checkpoint; an exported model runs in the precision it was exported in")
    if onnx is not None:
        from .export import OnnxPredictor

        return OnnxPredictor.load(onnx)
    if openvino is not None:
        from .openvino import OpenVinoPredictor

        return OpenVinoPredictor.load(openvino, torch.get_num_threads())  # as --threads set it
    if checkpoint is None:
        raise NexnetError("give --checkpoint DIR, --onnx FILE or --openvino DIR")
    return Predictor.load(checkpoint, device, amp=amp, graphs=graphs)  # graphs: CUDA only


def refuse_other_model(pred: Any, record: Checkpoint, flag: str) -> None:
    """One line when an exported model is not the checkpoint's (another network or input size)."""
    info = pred.info
    if (info["name"], info["image_size"]) != (record.name, record.image_size):
        raise NexnetError(f"{flag} {pred.checkpoint} holds {info['name']} at {info['image_size']} px, but "
                          f"--checkpoint {record.path} is {record.name} at {record.image_size} px; pass the pair "
                          "that nexnet export made")  # fmt: skip
