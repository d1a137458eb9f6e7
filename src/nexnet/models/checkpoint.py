"""A checkpoint folder's record, read once: what ``Predictor``, ``evaluate``, ``serve`` and ``export``
need to know about a model before (and besides) its weights."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import NexnetError
from ..outputs import RUN_CONFIG, SEEN, SPLIT
from .base import CONFIG_NAME, load_weights, read_config
from .registry import create_model, upgrade_config

# What a checkpoint's record says about its training: shown by serve's /model and kept in exports.
TRAINING_FACTS = ("dataset", "split", "split_seed", "epoch", "val_dice")


@dataclass(frozen=True)
class Checkpoint:
    """``config.json`` of a ``save_pretrained`` folder, validated, with the files beside it.

    Attributes:
        path: the checkpoint folder (``RUN/best``, ``RUN/last`` or any ``save_pretrained`` folder).
        name: the model's registry name.
        model_config: the keywords that rebuild it, upgraded from older releases.
        record: the whole ``config.json`` (image size, threshold, dataset, split fingerprint, epoch ...).
    """

    path: Path
    name: str
    model_config: dict[str, Any]
    record: dict[str, Any]

    @classmethod
    def read(cls, directory: str | os.PathLike | Checkpoint) -> Checkpoint:
        """Read and validate a checkpoint folder (or ``model.safetensors`` in one).

        Raises:
            NexnetError: a pickle, a missing or malformed folder, in one line.
        """
        if isinstance(directory, Checkpoint):
            return directory
        record = read_config(directory)
        path = Path(directory)
        path = path.parent if path.is_file() else path
        return cls(path, str(record["model"]), upgrade_config(record["model"], record["config"]), record)

    @property
    def image_size(self) -> Any:
        """The square input side the model was trained at (checked by ``Predictor``; default 224)."""
        return self.record.get("image_size", 224)

    @property
    def threshold(self) -> Any:
        """The probability threshold of its masks (default 0.5)."""
        return self.record.get("threshold", 0.5)

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def run_folder(self) -> Path | None:
        """The training run folder holding this checkpoint (``RUN/best``), if it is one."""
        parent = self.path.resolve().parent
        return parent if (parent / SPLIT).is_file() and (parent / RUN_CONFIG).is_file() else None

    @property
    def split_file(self) -> Path | None:
        """The split it was trained on: its own ``split.json``, else its run folder's (None: neither)."""
        for folder in (self.path, self.run_folder):
            if folder is not None and (folder / SPLIT).is_file():
                return folder / SPLIT
        return None

    def seen_images(self) -> dict[str, list[str]] | None:
        """``seen_images.json``: pixel hashes of the images it trained (``train``) and was selected
        (``val``) on; None when the checkpoint predates the record."""
        seen = self.path / SEEN
        return json.loads(seen.read_text()) if seen.is_file() else None

    def build(self, **overrides: Any) -> nn.Module:
        """The model with its weights, in eval mode. Loads safetensors only: never unpickles.

        Raises:
            NexnetError: a config that no longer builds, or weights that do not fit it.
        """
        try:
            model = create_model(self.name, **{**self.model_config, **overrides})
        except (NexnetError, ValueError, TypeError) as e:
            raise NexnetError(f"{self.config_file}: cannot rebuild the model from its config ({e})") from None
        load_weights(model, self.path, self.name)
        return model.eval()  # for inference, as the Hub's conventions have it: call .train() to fine-tune
