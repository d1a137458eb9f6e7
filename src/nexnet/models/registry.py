"""Model registry in the style of timm: ``create_model(name, **overrides)`` and ``list_models()``."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from ..errors import NexnetError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_UPGRADES: dict[str, Callable[[dict], dict]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Register a variant function under its own name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; ``overrides`` replace the variant's defaults."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise NexnetError(f"unknown model {name!r}{hint} (available: {', '.join(list_models())})")
    try:
        model = _MODELS[name](**overrides)
    except (TypeError, ValueError) as e:  # an unknown or misspelt keyword, or a bad value
        hint = ""
        if "'form'" in str(e):
            hint = "; only the nexnet_seg models have forms (for the paper's recipe alone: configs/paper_recipe.yaml)"
        raise NexnetError(f"model {name!r}: {e}{hint}") from None
    model.model_name = name
    return model


def register_config_upgrade(name: str, upgrade: Callable[[dict], dict]) -> None:
    """``upgrade`` turns a saved config of model ``name`` from an older release into today's keywords."""
    _UPGRADES[name] = upgrade


def upgrade_config(name: str, config: dict) -> dict:
    """A checkpoint's saved ``config`` for model ``name``, with the keywords that rebuild it today."""
    return _UPGRADES[name](config) if name in _UPGRADES else config
