"""Base class for segmentation models: a recorded config and safetensors save/load."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from ..errors import NexnetError
from ..io import atomic_directory, atomic_write_bytes, atomic_write_json, restore_interrupted

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT = "nexnet-seg/1"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar"}


class SegmentationModel(nn.Module):
    """A model that knows the registry name and keyword arguments that rebuild it.

    The contract every registered segmentation model keeps (``tests/test_model_contract.py`` checks
    each), and that training, ``Predictor``, ``evaluate``, ``serve`` and ONNX export rely on:

    - ``forward(x)`` takes ``x`` of shape ``(B, 3, H, W)``, float RGB in [0, 1] (no mean/std
      normalisation), with H and W multiples of ``size_multiple``;
    - it returns one tensor (not a tuple or a dict) of shape ``(B, num_classes, H, W)``: logits,
      before any sigmoid, at the input's size; channel 0 is the foreground of a binary mask;
    - ``self.config`` (set in ``__init__``) holds JSON-serialisable keywords that rebuild the model
      with ``create_model(model_name, **config)``; ``create_model`` sets ``model_name``.

    ``prefers_channels_last`` says whether training and inference should store the weights
    channels_last.
    """

    model_name: str = ""
    config: dict[str, Any]
    # Convolutional models run faster with channels_last weights on CPU (measured in
    # docs/performance.md); the engine applies it through nexnet.runtime.place_model.
    prefers_channels_last: bool = True
    # Input height and width must be multiples of this (the total downsampling).
    size_multiple: int = 32

    def save_pretrained(self, directory: str | os.PathLike, extra: dict | None = None,
                        json_files: dict[str, Any] | None = None) -> Path:  # fmt: skip
        """Write the model to ``directory``: see :func:`save_pretrained`."""
        return save_pretrained(self, directory, extra, json_files)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **overrides) -> SegmentationModel:
        """:func:`from_pretrained`, refused in one line when the folder holds another class."""
        model = from_pretrained(directory, **overrides)
        if not isinstance(model, cls):
            raise NexnetError(f"{directory}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def state_dict_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def checkpoint_config(model: nn.Module, extra: dict | None = None) -> dict[str, Any]:
    """``config.json`` of a checkpoint: the registry name and keywords that rebuild ``model``, plus ``extra``."""
    name = getattr(model, "model_name", "")
    if not name:
        raise ValueError("model has no registry name: build it with nexnet.create_model")
    return {"format": FORMAT, "model": name, "config": model.config, **(extra or {})}


def save_pretrained(model: nn.Module, directory: str | os.PathLike, extra: dict | None = None,
                    json_files: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write ``model.safetensors`` and ``config.json`` to ``directory``, atomically as a folder: a
    kill leaves the old folder or the new one, never half of either.

    Args:
        model: a model built by ``create_model`` (it has ``model_name`` and ``config``).
        directory: the folder to write (replaced whole if it exists).
        extra: more keys for ``config.json`` (``image_size``, ``threshold``, the split's record ...).
        json_files: more files, name -> JSON content (``split.json``, ``seen_images.json``).

    Returns:
        ``directory``, as a ``Path``.

    Raises:
        ValueError: a model without a registry name.
    """
    config = checkpoint_config(model, extra)
    with atomic_directory(directory) as tmp:
        atomic_write_bytes(tmp / WEIGHTS_NAME, save(state_dict_tensors(model)))
        atomic_write_json(tmp / CONFIG_NAME, config)
        for file_name, content in (json_files or {}).items():
            atomic_write_json(tmp / file_name, content)
    return Path(directory)


def checkpoint_folder(path: str | os.PathLike) -> tuple[Path, str]:
    """``path``, or ``path/best`` when ``path`` is a run folder; with the note to print ('' if none)."""
    path = Path(path)
    if not (path / CONFIG_NAME).is_file() and (path / "best" / CONFIG_NAME).is_file():
        return path / "best", f"note: {path} is a run folder; using its best/ (validation-chosen) checkpoint"
    return path, ""


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """Validate a checkpoint folder and return its ``config.json``; refuses pickles with a clear line."""
    path = Path(directory)
    restore_interrupted(path)  # a kill between the two renames of a save
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES or _looks_like_pickle(path):
            raise NexnetError(
                f"{path}: is a pickle file; nexnet never unpickles checkpoints (they can run code). "
                "Pass a folder written by save_pretrained (model.safetensors + config.json)"
            )
        if path.name == WEIGHTS_NAME:
            path = path.parent
        else:
            raise NexnetError(f"{path}: is a file; pass the checkpoint folder that holds {CONFIG_NAME}")
    if not path.exists():
        raise NexnetError(f"{path}: checkpoint folder does not exist")
    cfg_path = path / CONFIG_NAME
    if not cfg_path.is_file() or not (path / WEIGHTS_NAME).is_file():
        raise NexnetError(f"{path}: not a checkpoint folder (needs {WEIGHTS_NAME} and {CONFIG_NAME})")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NexnetError(f"{cfg_path}: is not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or "model" not in cfg or "config" not in cfg:
        raise NexnetError(f"{cfg_path}: lacks the 'model' and 'config' keys of a nexnet checkpoint")
    return cfg


def from_pretrained(directory: str | os.PathLike, **overrides) -> nn.Module:
    """Rebuild a model from a ``save_pretrained`` folder, in eval mode.

    Loads safetensors only: never unpickles. The model expects RGB in [0, 1] (no mean/std
    normalisation), ``(B, 3, H, W)`` with H and W multiples of ``model.size_multiple``, and returns
    ``(B, num_classes, H, W)`` logits; ``nexnet.Predictor`` does the resizing and thresholding.

    Args:
        directory: the folder (or its ``model.safetensors``).
        overrides: model keywords that replace the recorded ones.

    Raises:
        NexnetError: a pickle, a malformed folder, or weights that do not fit the config.
    """
    from .checkpoint import Checkpoint  # it reads folders with read_config, below

    return Checkpoint.read(directory).build(**overrides)


def load_weights(model: nn.Module, path: Path, name: str) -> None:
    """Load ``path/model.safetensors`` into ``model``, refusing in one line weights that do not fit."""
    try:
        state = load_file(path / WEIGHTS_NAME)
    except (SafetensorError, OSError) as e:
        raise NexnetError(f"{path / WEIGHTS_NAME}: unreadable safetensors file ({e})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise NexnetError(
            f"{path / WEIGHTS_NAME}: does not match {name} with its config.json "
            f"(missing {missing[:2]}, unexpected {unexpected[:2]}, wrong shape {wrong[:2]})"
        )
    model.load_state_dict(state)


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    # Pickle protocol 2+ starts with 0x80; torch.save writes a zip archive ("PK").
    return head[:1] == b"\x80" or head[:2] == b"PK"
