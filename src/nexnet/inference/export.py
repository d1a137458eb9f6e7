"""``nexnet export``: ONNX export checked against onnxruntime, and an onnxruntime predictor."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import read_image, resize_image, to_model_input
from ..errors import NexnetError
from ..io import write_with
from ..models.checkpoint import TRAINING_FACTS, Checkpoint
from ..outputs import refuse_inside_sources
from ..synthetic import synthetic_case
from .predictor import Predictor
from .tta import exported_probabilities

TOLERANCE = 1e-4
INSTALL_HINT = "pip install 'nexnet-seg[onnx]' (or: pip install onnx onnxruntime)"


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise NexnetError(f"ONNX needs the onnx extra: {INSTALL_HINT}") from None
    return onnx, onnxruntime


def parity_error(ref: np.ndarray, got: np.ndarray) -> float:
    """Largest difference between two logit maps, relative to the logits' scale when that exceeds 1.

    Float32 rounding grows with the values: an undertrained model can give logits of several
    hundred on noise, where a difference of 1e-3 is rounding, not a wrong export.
    """
    return float(np.abs(ref - got).max() / max(1.0, float(np.abs(ref).max())))


def _refuse_foreign_file(out: Path, onnx: Any) -> None:
    """Replace ``out`` only if it is an ONNX file ``nexnet export`` wrote."""
    if out.is_dir():
        raise NexnetError(f"--out {out}: is a folder; give the .onnx file to write")
    if not out.exists():
        return
    try:
        ours = any(p.key == "nexnet_model" for p in onnx.load(str(out), load_external_data=False).metadata_props)
    except Exception:  # noqa: BLE001  (any file onnx cannot read is not ours)
        ours = False
    if not ours:
        raise NexnetError(f"--out {out}: exists and was not written by nexnet export; choose another file")


def export_onnx(checkpoint: str | Path, out: str | Path, dynamic: bool = False, image: str | Path | None = None,
                opset: int = 17, say=print) -> dict[str, float]:  # noqa: ANN001  # fmt: skip
    """Export ``checkpoint`` to ``out`` and check it with onnxruntime on a random input and an image."""
    refuse_inside_sources(out, "--out", {"--image": image, "--checkpoint": checkpoint})
    onnx, ort = _require_onnx()
    _refuse_foreign_file(Path(out), onnx)
    record = Checkpoint.read(checkpoint)
    pred = Predictor.load(record, "cpu", fast_layout=False)
    model, size = pred.model.eval(), pred.image_size
    example = torch.rand(1, 3, size, size)
    out = Path(out)
    replacing = out.exists()
    facts = {k: record.record.get(k) for k in TRAINING_FACTS}
    write_with(out, lambda tmp: write_onnx(pred, tmp, dynamic, opset, example, facts))
    if replacing:
        say(f"replaced {out}, an earlier nexnet export")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    if image is not None:
        picture, label = read_image(image), Path(image).name
    else:
        picture, label = synthetic_case(0, 180, 240)[0], "a synthetic polyp-like image"
    as_input = to_model_input(resize_image(picture, size)[None], "cpu").contiguous()
    checks = {"random input": example, label: as_input}
    if dynamic:
        checks["random input at another size"] = torch.rand(2, 3, size + 32, size + 64)
    diffs = {}
    with torch.no_grad():
        for name, x in checks.items():
            ref = model(x).numpy()
            got = session.run(None, {"image": x.numpy()})[0]
            diffs[name] = parity_error(ref, got)
    worst = max(diffs.values())
    for name, d in diffs.items():
        say(f"onnxruntime check, {name}: max |PyTorch - ONNX| / max(1, max |logit|) = {d:.2e}")
    if worst > TOLERANCE:
        raise NexnetError(f"{out}: onnxruntime differs from PyTorch by {worst:.2e} of the logits' scale "
                          f"(> {TOLERANCE:g})")  # fmt: skip
    say(
        f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, opset {opset}, "
        f"{'dynamic batch and size' if dynamic else f'dynamic batch, {size}x{size}'}): check passed (<= {TOLERANCE:g})"
    )
    return diffs


def write_onnx(pred: Predictor, path: Path, dynamic: bool = False, opset: int = 17,
               example: torch.Tensor | None = None, facts: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Write ``pred``'s network to ``path`` as ONNX: input ``image`` ``(B, 3, S, S)``, output ``logits``
    ``(B, num_classes, S, S)``, a dynamic batch (and size, with ``dynamic``), and the metadata that
    ``OnnxPredictor`` and ``serve`` read (model, image size, threshold, config, and the checkpoint's
    ``facts``: dataset, split, epoch, validation Dice)."""
    onnx, _ = _require_onnx()
    model, size = pred.model.eval(), pred.image_size
    example = torch.rand(1, 3, size, size) if example is None else example
    axes = {"image": {0: "batch"}, "logits": {0: "batch"}}
    if dynamic:
        axes = {"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["logits"], dynamic_axes=axes)  # fmt: skip
    proto = onnx.load(str(path))
    meta = {"nexnet_model": getattr(model, "model_name", ""), "image_size": str(size),
            "threshold": str(pred.threshold), "config": json.dumps(model.config),
            "input": "RGB in [0, 1], (B, 3, H, W); output: logits (B, 1, H, W)",
            "training": json.dumps(facts or {})}  # fmt: skip
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))


@dataclass
class OnnxPredictor:
    """The ``Predictor`` interface over an onnxruntime session."""

    session: Any
    image_size: int
    threshold: float = 0.5
    checkpoint: str = ""
    precision: str = "float32"
    device: str = "cpu (onnxruntime)"
    amp: None = None

    @property
    def info(self) -> dict[str, Any]:
        """The model's name, config, input size, threshold and training facts, from the file's metadata."""
        meta = self.session.get_modelmeta().custom_metadata_map
        facts = json.loads(meta.get("training", "{}"))
        return {"name": meta.get("nexnet_model") or "onnx model", "config": json.loads(meta.get("config", "{}")),
                "image_size": self.image_size, "threshold": self.threshold,
                **{k: facts.get(k) for k in TRAINING_FACTS}}  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> OnnxPredictor:
        onnx, ort = _require_onnx()
        path = Path(path)
        if not path.is_file():
            raise NexnetError(f"--onnx {path}: file does not exist")
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types
            raise NexnetError(f"--onnx {path}: not a loadable ONNX model ({str(e).splitlines()[0]})") from None
        meta = session.get_modelmeta().custom_metadata_map
        if "image_size" not in meta:
            raise NexnetError(f"--onnx {path}: not exported by 'nexnet export' (no image_size metadata)")
        return cls(session, int(meta["image_size"]), float(meta.get("threshold", 0.5)), str(path))

    def probabilities(self, images: np.ndarray, batch_size: int = 8, tta: bool = False) -> np.ndarray:
        """As ``Predictor.probabilities``, through onnxruntime."""
        run = lambda x: self.session.run(None, {"image": x})[0]  # noqa: E731
        return exported_probabilities(run, images, batch_size, tta, self.image_size)
