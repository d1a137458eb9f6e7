"""Run configuration: defaults (the paper's recipe), a YAML file, then ``--set key=value`` overrides."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import NexnetError
from ..evaluation import VALIDATION_METRICS
from ..models.input_checks import nearest_multiples
from .run_config import PretrainConfig, RunConfig, merge

# The default recipe as nested dicts (the shape of a YAML config); the dataclasses of run_config.py
# hold the values and say why they are what they are.
DEFAULTS: dict[str, Any] = RunConfig().to_dict()

# The paper's recipe (configs/paper_recipe.yaml): what differs from DEFAULTS. With NExNet Seg's paper
# form it is the paper's network and recipe (configs/paper_exact.yaml).
PAPER_RECIPE: dict[str, Any] = {
    "train": {"batch_size": 64, "lr": 1.0e-4, "schedule": "plateau", "tpen_lr_scale": 1.0, "tpen_weight_decay": None},
}  # fmt: skip
PAPER_FORM: dict[str, Any] = {"model": {"form": "paper"}}


def parse_set(items: list[str]) -> dict:
    """``["train.lr=3e-4", "model.gamma=rmt"]`` -> nested dict, values parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise NexnetError(f"--set {item!r}: write key=value, e.g. train.lr=3e-4")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise NexnetError(f"{path}: config file does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise NexnetError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise NexnetError(f"{path}: expected a mapping of sections (model, data, train, ...)")
    return data


def requested(config_file: str | Path | list | None = None, sets: list[str] | None = None,
              **flags: Any) -> dict:  # fmt: skip
    """What a caller sets, nested like a config and nothing more: config file(s), later ones winning,
    then flags (``section__key``; None: not given), then ``--set``."""
    files = config_file if isinstance(config_file, list) else [config_file] if config_file else []
    layers = [load_yaml(path) for path in files]
    layers.append({})
    for name, value in flags.items():
        if value is not None:
            section, key = name.split("__", 1)
            layers[-1].setdefault(section, {})[key] = value
    layers.append(parse_set(sets or []))
    out: dict = {}
    for layer in layers:
        for section, values in layer.items():
            if not isinstance(values, dict):
                example = next(iter(DEFAULTS.get(section) or {"name": 0}))
                raise NexnetError(f"config key {section!r} is a section: set its keys, e.g. {section}.{example}=...")
            out.setdefault(section, {}).update(values)
    return out


def resolve(config_file: str | Path | list | None = None, sets: list[str] | None = None,
            **flags: Any) -> RunConfig:  # fmt: skip
    """A run's typed config: defaults <- config file(s) <- flags <- ``--set``.

    Args:
        config_file: a YAML file, or a list of them (later ones win); None: none.
        sets: ``KEY=VALUE`` overrides, e.g. ``["train.lr=3e-4"]``, values parsed as YAML.
        flags: config keys as ``section__key=value`` (None: not given), e.g. ``model__name="unet"``.

    Returns:
        The :class:`RunConfig` (``model``, ``data``, ``train``, ``loss``, ``augment``) that ``train``
        takes; ``train`` builds the model and checks the numbers.

    Raises:
        NexnetError: a missing or malformed file, an unknown key, or a section set as a value.
    """
    return resolved(requested(config_file, sets, **flags))


def resolved(asked: dict) -> RunConfig:
    """The defaults with ``asked`` (nested like a config, as ``requested`` makes it) laid over them."""
    return RunConfig.from_dict(merge(DEFAULTS, asked))


# (section, key, smallest valid value, may be null); checked before any decoding.
NUMBERS = [
    ("train", "epochs", 1, False), ("train", "batch_size", 1, False), ("train", "eval_batch_size", 1, False),
    ("train", "warmup_epochs", 0, False), ("train", "early_stop", 1, False), ("train", "plateau_patience", 1, False),
    ("data", "workers", 1, True), ("data", "seed", 0, False), ("train", "seed", 0, False),
]  # fmt: skip
# (section, key, may be null, may be 0)
REALS = [
    ("train", "lr", False, False), ("train", "max_minutes", True, False), ("train", "grad_clip", True, False),
    ("train", "min_lr", False, True), ("train", "weight_decay", False, True), ("train", "tpen_lr_scale", False, False),
    ("train", "tpen_weight_decay", True, True), ("train", "plateau_factor", False, False),
    ("train", "ema_decay", True, False), ("loss", "bce_weight", False, True), ("loss", "dice_weight", False, True),
    *[("augment", k, False, True)
      for k in ("hflip", "vflip", "rotate_degrees", "brightness", "contrast", "saturation")],
]  # fmt: skip
PROBABILITIES = [("augment", "hflip"), ("augment", "vflip"), ("train", "plateau_factor")]  # at most 1


def check_count(value: Any, flag: str, least: int, default: Any, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise NexnetError(f"{flag} {value!r}: use a whole number of at least {least} (default {default})")


def check_real(value: Any, flag: str, default: Any, nullable: bool = False, zero: bool = False) -> None:
    """A number above 0 (or from 0, with ``zero``), or None where ``nullable``; else one line."""
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 if zero else value > 0):
        bound = "0 or more" if zero else "above 0"
        raise NexnetError(f"{flag} {value!r}: use a number {bound} (default {default})")


def check_image_size(size: int, multiple: int, model: str, flag: str = "data.image_size") -> None:
    check_count(size, flag, multiple, 224)
    if size % multiple:
        valid = " or ".join(str(v) for v in nearest_multiples(size, multiple))
        raise NexnetError(f"{flag} {size}: {model} needs a multiple of {multiple}; use {valid}")


def check_run_numbers(cfg: RunConfig, size_multiple: int, model: str,
                      flag_names: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """One line naming the option and a valid value for the first bad number of a run's config.
    Options are named by their config key (``train.epochs``), or as ``flag_names`` maps that key."""
    value = lambda section, key: getattr(getattr(cfg, section), key)  # noqa: E731
    named = lambda section, key: (flag_names or {}).get(f"{section}.{key}", f"{section}.{key}")  # noqa: E731
    for section, key, least, nullable in NUMBERS:
        check_count(value(section, key), named(section, key), least, DEFAULTS[section][key], nullable)
    for section, key, nullable, zero in REALS:
        check_real(value(section, key), named(section, key), DEFAULTS[section][key], nullable, zero)
    for section, key in PROBABILITIES:
        if value(section, key) > 1:
            raise NexnetError(f"{section}.{key} {value(section, key)!r}: use a number from 0 to 1")
    if cfg.train.ema_decay is not None and cfg.train.ema_decay >= 1:
        raise NexnetError(f"train.ema_decay {cfg.train.ema_decay!r}: use a number between 0 and 1, "
                          "e.g. 0.999, or null for no average")  # fmt: skip
    pos_weight = cfg.loss.pos_weight
    if pos_weight != "auto" and (isinstance(pos_weight, bool) or not isinstance(pos_weight, (int, float))
                                 or pos_weight <= 0):  # fmt: skip
        raise NexnetError(f"loss.pos_weight {pos_weight!r}: use auto (from the training masks) or a number above 0")
    check_image_size(cfg.data.image_size, size_multiple, model, named("data", "image_size"))
    if cfg.train.select not in VALIDATION_METRICS:
        raise NexnetError(f"train.select {cfg.train.select!r}: choose a validation metric, one of "
                          f"{', '.join(VALIDATION_METRICS)} (default dice)")  # fmt: skip


def dump(cfg: RunConfig | PretrainConfig | dict) -> str:
    return yaml.safe_dump(cfg if isinstance(cfg, dict) else cfg.to_dict(), sort_keys=False)


def paper_recipe(model: str) -> dict:
    """:data:`PAPER_RECIPE` for ``model``, with ``form: paper`` for NExNet Seg variants (other models
    have no form)."""
    return {**copy.deepcopy(PAPER_RECIPE), **(PAPER_FORM if model.startswith("nexnet_seg") else {})}
