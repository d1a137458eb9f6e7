"""The folder of one training or pretraining run, and the one place that reads and writes it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.discovery import source_folders
from ..errors import NexnetError
from ..io import atomic_write_text, restore_interrupted
from ..models.registry import upgrade_config
from ..outputs import RUN_CONFIG, SPLIT, refuse_foreign_files, refuse_inside_sources
from .config import dump, load_yaml
from .run_config import PretrainConfig, RunConfig
from .runlog import write_curves, write_log
from .state import load_training_state, save_training_state


@dataclass(frozen=True)
class RunFolder:
    """``config.yaml`` (the resolved config), ``split.json``, ``best/`` (the validation-chosen
    checkpoint, loadable with ``from_pretrained``), ``last/`` (weights and everything ``--resume``
    needs), ``log.csv`` and ``curves.png``. Every file is written atomically, and a folder that holds
    a run is continued with ``--resume``, never started over."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / RUN_CONFIG

    @property
    def split(self) -> Path:
        return self.path / SPLIT

    @property
    def best(self) -> Path:
        return self.path / "best"

    @property
    def last(self) -> Path:
        return self.path / "last"

    def refuse_unless_writable(self, resume: bool, data_roots: Iterable[str | None],
                               ours_prefix: Iterable[str] = ()) -> None:  # fmt: skip
        """One line, before anything is decoded, when the folder holds a run and ``resume`` is off, lies
        inside a data root, or holds files nexnet did not write."""
        for checkpoint in (self.last, self.best):  # a kill between the two renames of a save
            restore_interrupted(checkpoint)
        if not resume and self.last.exists():
            raise NexnetError(f"{self.path}: already holds a run; pass --resume to continue it, "
                              "or choose another --out")  # fmt: skip
        for root in data_roots:
            refuse_inside_sources(self.path, "--out", source_folders("--data-root", root, besides=[self.path]))
        refuse_foreign_files(self.path, "--out", ours_prefix=tuple(ours_prefix))

    def read_config(self) -> dict:
        """The resolved config this run was started with (for ``--resume``)."""
        if not self.config.is_file():
            raise NexnetError(f"--resume: {self.path} holds no config.yaml; start the run without --resume")
        return load_yaml(self.config)

    def read_run_config(self) -> RunConfig:
        """A training run's config as it trains: keys its release did not write take that release's
        values, and the model's keywords are upgraded as ``from_pretrained`` upgrades them."""
        raw = self.read_config()
        if "datasets" in raw:
            raise NexnetError(f"--resume: {self.path} holds a pretraining run; resume it with nexnet pretrain")
        try:
            cfg = RunConfig.from_dict(raw, saved=True)
        except NexnetError as e:
            raise NexnetError(f"{self.config}: {e}") from None
        cfg.model = {"name": cfg.model_name, **upgrade_config(cfg.model_name, cfg.model_kwargs())}
        return cfg

    def write_config(self, cfg: dict | RunConfig | PretrainConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config, dump(cfg))

    def save_last(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                  checkpoint_extra: dict[str, Any] | None = None,
                  json_files: dict[str, Any] | None = None) -> None:  # fmt: skip
        save_training_state(self.last, model, optimizer, state, checkpoint_extra, json_files)

    def load_last(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return load_training_state(self.last, model, optimizer)

    def write_log(self, rows: list[dict], fields: list[str] | None = None, curves: bool = True) -> None:
        """``log.csv`` and, with ``curves``, ``curves.png`` (the training run's six panels)."""
        write_log(self.path / "log.csv", rows, fields)
        if curves:
            write_curves(self.path / "curves.png", rows)
