"""OpenVINO on a CPU: a checkpoint's network as OpenVINO IR, and the ``Predictor`` interface over a
compiled model (``predict``, ``evaluate`` and ``serve`` take ``--openvino DIR``).

An exported folder holds ``model.xml`` and ``model.bin`` (the IR) and ``deploy.json``: the model's
name, config, input size, threshold and precision, and for int8 what calibrated and verified it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import NexnetError
from ..models.checkpoint import TRAINING_FACTS
from ..outputs import DEPLOY_RECORD
from .export import parity_error, write_onnx
from .predictor import Predictor
from .tta import exported_probabilities

INSTALL_HINT = "pip install 'nexnet-seg[deploy]' (or: pip install openvino nncf)"
RECORD = DEPLOY_RECORD
IR = "model.xml"
FORMAT = "nexnet-seg-openvino/1"
TOLERANCE = 1e-4  # fp32 IR against PyTorch, as for ONNX


def require_openvino() -> Any:
    """The ``openvino`` module, or one line saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise NexnetError(f"OpenVINO needs the deploy extra: {INSTALL_HINT}") from None
    return openvino


def to_openvino(pred: Predictor) -> Any:
    """``pred``'s network as an ``openvino.Model`` with a dynamic batch, converted from the ONNX graph
    that ``nexnet export`` writes (one exporter for both runtimes)."""
    ov = require_openvino()
    with tempfile.TemporaryDirectory(prefix="nexnet-openvino-") as tmp:
        onnx_file = Path(tmp) / "model.onnx"
        write_onnx(pred, onnx_file)
        return ov.convert_model(str(onnx_file))


def compile_model(model: Any, threads: int | None = None) -> Any:
    """A CPU-compiled model at float32 (the hint keeps CPUs with bf16 from lowering it): an int8 IR
    still runs its quantized layers in int8."""
    ov = require_openvino()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return ov.Core().compile_model(model, "CPU", config)


def fp32_parity(pred: Predictor, compiled: Any, batch: int = 2) -> float:
    """``parity_error`` of the compiled model's logits against PyTorch's on a random batch."""
    x = torch.rand(batch, 3, pred.image_size, pred.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = pred.model(x).numpy()
    return parity_error(ref, compiled(x.numpy())[0])


@dataclass
class OpenVinoPredictor:
    """The ``Predictor`` interface over an OpenVINO compiled model, on the CPU."""

    compiled: Any
    image_size: int
    threshold: float
    precision: str
    record: dict[str, Any]
    checkpoint: str = ""
    device: str = "cpu (OpenVINO)"
    amp: None = None

    @property
    def info(self) -> dict[str, Any]:
        """The model's name, config, input size, threshold and training facts (dataset, split,
        epoch, validation Dice), from ``deploy.json``."""
        facts = {k: self.record.get(k) for k in TRAINING_FACTS}
        return {"name": self.record["model"], "config": self.record.get("config", {}), "image_size": self.image_size,
                "threshold": self.threshold, **facts}  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path, threads: int | None = None) -> OpenVinoPredictor:
        """An exported folder (``nexnet export --format openvino``), compiled for this CPU.

        Args:
            folder: the folder holding ``model.xml``, ``model.bin`` and ``deploy.json``.
            threads: CPU threads for inference (None: OpenVINO's choice).

        Raises:
            NexnetError: the extra missing, or a folder that ``nexnet export`` did not write.
        """
        ov = require_openvino()
        folder = Path(folder)
        record = read_record(folder)
        try:
            compiled = compile_model(ov.Core().read_model(str(folder / IR)), threads)
        except RuntimeError as e:
            raise NexnetError(f"--openvino {folder}: cannot load its {IR} ({str(e).splitlines()[0]})") from None
        return cls(compiled, int(record["image_size"]), float(record["threshold"]), str(record["precision"]), record,
                   str(folder))  # fmt: skip

    def probabilities(self, images: np.ndarray, batch_size: int = 8, tta: bool = False) -> np.ndarray:
        """As ``Predictor.probabilities``: ``(N, S, S, 3)`` uint8 -> ``(N, S, S)`` float32, through OpenVINO."""
        return exported_probabilities(lambda x: self.compiled(x)[0], images, batch_size, tta, self.image_size)


def read_record(folder: Path) -> dict[str, Any]:
    """``deploy.json`` of an exported folder, or one line saying what the folder lacks."""
    if not (folder / IR).is_file() or not (folder / RECORD).is_file():
        raise NexnetError(f"--openvino {folder}: not a folder written by 'nexnet export --format openvino' "
                          f"(needs {IR}, model.bin and {RECORD})")  # fmt: skip
    try:
        record = json.loads((folder / RECORD).read_text())
    except json.JSONDecodeError as e:
        raise NexnetError(f"{folder / RECORD}: not valid JSON ({e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise NexnetError(f"{folder / RECORD}: not a nexnet OpenVINO export record")
    return record
