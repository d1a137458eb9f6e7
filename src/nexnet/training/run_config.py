"""The typed config of a run: one dataclass per section, resolved once and saved with the run.

``RunConfig`` is what ``nexnet train`` runs: ``model`` (the registry name and that model's own
keywords, free-form because each model has its own), ``data`` (:class:`~nexnet.data.DataConfig`),
``train``, ``loss`` and ``augment``. ``PretrainConfig`` is what ``nexnet pretrain`` runs. The
defaults below are the default recipe; ``configs/default.yaml`` holds the same values (a test keeps
them equal). It departs from the paper's (``configs/paper_exact.yaml``) where docs/training.md
measured that NExNet Seg learns faster: batch 16, lr 2e-3 with a cosine schedule, T-PEN
coefficients at 10x the rate without weight decay. The paper's warm-up, clipping and loss are kept.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from ..data import Augment, DataConfig, checked_keys
from ..errors import NexnetError

# Runs saved before these keys existed trained without them; resuming one keeps what it had.
LEGACY = {"train": {"schedule": "plateau", "tpen_lr_scale": 1.0, "tpen_weight_decay": None}}


def merge(base: dict, update: dict, where: str = "") -> dict:
    """``base`` updated by ``update``, recursively; unknown sections are refused, model keys are free."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{where}{key}"
        if key not in out and not path.startswith("model."):
            raise NexnetError(f"unknown config key {path!r} (known: {', '.join(sorted(out))})")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, path + ".")
        elif isinstance(out.get(key), dict) and not where:
            example = next(iter(out[key]), "name")
            raise NexnetError(f"config key {path!r} is a section: set its keys, e.g. {path}.{example}=...")
        else:
            out[key] = value
    return out


@dataclass
class TrainConfig:
    epochs: int = 250
    batch_size: int = 16  # per process
    lr: float = 2.0e-3
    weight_decay: float = 1.0e-4
    schedule: str = "cosine"  # or "plateau"
    warmup_epochs: int = 5
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    min_lr: float = 1.0e-6
    early_stop: int = 30  # epochs without a better validation score (``select``)
    select: str = "dice"  # the validation metric that chooses best/ and stops early (VALIDATION_METRICS)
    grad_clip: float | None = 0.5
    tpen_lr_scale: float = 10.0
    tpen_weight_decay: float | None = 0.0  # None: the common weight_decay
    seed: int = 0
    device: str = "auto"
    amp: bool | str = False
    max_minutes: float | None = None
    eval_batch_size: int = 16
    ssl_checkpoint: str | None = None
    compile: bool | str = False  # True: inductor; a string names another backend
    ema_decay: float | None = None  # validate and save a moving average of the weights (None: off)


@dataclass
class LossConfig:
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    pos_weight: float | str = "auto"  # auto: from the training masks


@dataclass
class AugmentConfig(Augment):
    """:class:`~nexnet.data.Augment`'s settings (its fields and defaults), and whether to augment at all."""

    enabled: bool = True


SECTIONS = {"data": DataConfig, "train": TrainConfig, "loss": LossConfig, "augment": AugmentConfig}


@dataclass
class RunConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"name": "nexnet_seg"})
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | RunConfig, saved: bool = False) -> RunConfig:
        """From nested dicts (a YAML file, ``merge``'s result); missing keys take the defaults, or, with
        ``saved`` (a run's own ``config.yaml``, being resumed), what runs of that age trained with."""
        if isinstance(values, RunConfig):
            return values
        unknown = sorted(set(values) - {"model", *SECTIONS})
        if unknown:
            raise NexnetError(f"unknown config key {unknown[0]!r} (known: augment, data, loss, model, train)")
        parts: dict[str, Any] = {"model": dict(values.get("model") or {"name": "nexnet_seg"})}
        for name, section in SECTIONS.items():
            given = dict(values.get(name) or {})
            if saved:
                given = {**LEGACY.get(name, {}), **given}
            parts[name] = section(**checked_keys(section, given, name))
        return cls(**parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, update: dict[str, Any]) -> RunConfig:
        """A copy with ``update`` (nested dicts, as in YAML) applied; unknown keys refused."""
        return RunConfig.from_dict(merge(self.to_dict(), update))

    @property
    def model_name(self) -> str:
        return str(self.model["name"])

    def model_kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in self.model.items() if k != "name"}


@dataclass
class PretrainConfig:
    """``nexnet pretrain``: the SSL autoencoder on the training part of each dataset's split."""

    datasets: list[str] = field(default_factory=list)
    data_roots: list[str] = field(default_factory=list)
    split: str | None = None
    seed: int = 0
    split_seed: int = 0
    image_size: int = 224
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1.0e-3
    noise: float = 0.1  # Gaussian sigma on [0, 1] images
    vgg_weights: str | None = None
    holdout: float = 0.05  # of the training images, for PSNR/SSIM and the best checkpoint
    device: str = "auto"
    max_minutes: float | None = None
    workers: int | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any] | PretrainConfig) -> PretrainConfig:
        if isinstance(values, PretrainConfig):
            return values
        if "datasets" not in values:
            raise NexnetError("this folder's config.yaml is not a pretraining run's; resume it with the verb "
                              "that made it")  # fmt: skip
        values = {"split_seed": values.get("seed", 0), **values}  # runs from before --split-seed split with --seed
        return cls(**checked_keys(cls, values, "pretrain"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
