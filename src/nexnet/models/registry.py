"""Model registry in the style of timm: ``create_model(name, **overrides)`` and ``list_models()``."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
import typing
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from ..errors import NexnetError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_UPGRADES: dict[str, Callable[[dict], dict]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Register a variant function under its own name, for :func:`create_model`.

    Args:
        fn: a function of model keywords that returns a ``SegmentationModel`` (see its contract).

    Returns:
        ``fn`` itself, so that it works as a decorator.

    Raises:
        ValueError: a name registered twice.
    """
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (e.g. ``"segformer_*"``), sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model, with random weights.

    Args:
        name: a registry name (:func:`list_models`).
        overrides: model keywords that replace the variant's defaults, e.g. ``gamma="rmt"``.

    Returns:
        The model, in training mode, with ``model_name`` set. It takes ``(B, 3, H, W)`` RGB in [0, 1]
        and returns ``(B, num_classes, H, W)`` logits.

    Raises:
        NexnetError: an unknown name (with the close ones), or an unknown keyword or bad value.
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise NexnetError(f"unknown model {name!r}{hint} (available: {', '.join(list_models())})")
    try:
        model = _MODELS[name](**overrides)
    except (TypeError, ValueError) as e:  # an unknown or misspelt keyword, or a bad value
        raise NexnetError(f"model {name!r}: {_explained(name, e)}") from None
    model.model_name = name
    return model


def model_keywords(name: str) -> list[str]:
    """The keywords model ``name`` takes: its variant function's, and, where that passes ``**kwargs``
    on, those of the class it is annotated to return."""
    fn = _MODELS[name]
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(fn).parameters.values()
    keywords = {p.name for p in params if p.kind in named}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        try:
            returned = typing.get_type_hints(fn).get("return")
        except Exception:  # noqa: BLE001 - an annotation that does not resolve only loses the list
            returned = None
        if isinstance(returned, type):
            keywords |= {p.name for p in inspect.signature(returned.__init__).parameters.values()
                         if p.kind in named and p.name != "self"}  # fmt: skip
    return sorted(keywords)


def _explained(name: str, error: Exception) -> str:
    """``error`` from building model ``name``, with a closest valid keyword or the list of them."""
    if "'form'" in str(error):
        recipe_alone = "configs/paper_recipe.yaml"
        return f"{error}; only the nexnet_seg models have forms (for the paper's recipe alone: {recipe_alone})"
    unknown = re.search(r"unexpected keyword argument '(\w+)'", str(error))
    keywords = model_keywords(name)
    if not unknown or not keywords or unknown.group(1) in keywords:  # a valid one, refused deeper in: as it is
        return str(error)
    close = difflib.get_close_matches(unknown.group(1), keywords, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"its settings: {', '.join(keywords)}"
    return f"no setting {unknown.group(1)!r} ({hint})"


def register_config_upgrade(name: str, upgrade: Callable[[dict], dict]) -> None:
    """``upgrade`` turns a saved config of model ``name`` from an older release into today's keywords."""
    _UPGRADES[name] = upgrade


def upgrade_config(name: str, config: dict) -> dict:
    """A checkpoint's saved ``config`` for model ``name``, with the keywords that rebuild it today."""
    return _UPGRADES[name](config) if name in _UPGRADES else config
