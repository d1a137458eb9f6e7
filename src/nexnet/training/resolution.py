"""A training run's config, resolved once: layered, compared with the run it resumes, paths made
absolute, an older run's model keywords upgraded, and the model built from it.

``resolve_run`` is what ``nexnet train`` calls; ``train`` takes its :class:`ResolvedRun` as it is.
Error messages name config keys (``train.epochs``), or a caller's own words for them through
``flag_names`` (the CLI's ``--epochs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import NexnetError
from ..models import create_model
from .config import check_run_numbers, requested, resolved
from .run_config import RunConfig
from .run_folder import RunFolder

# What a resumed run may take anew; every other key it is given must match the run's own.
RESUMABLE = ("train.epochs", "train.max_minutes", "train.device", "data.data_root", "data.workers")


@dataclass
class ResolvedRun:
    """A run ready to train: its finished config (absolute paths, the model's full keyword set as the
    model records it) and the model built from that config on the CPU, seeded with ``train.seed``.
    It is used once: training changes the model in place."""

    cfg: RunConfig
    model: torch.nn.Module
    resumed_from: Path | None = None  # the run folder whose own config this is, when resuming it


def resolve_run(files: list[str] | str | None = None, sets: list[str] | None = None,
                flags: Mapping[str, Any] | None = None, out: str | Path | None = None, resume: bool = False,
                last: Mapping[str, Mapping[str, Any]] | None = None,
                flag_names: Mapping[str, str] | None = None) -> ResolvedRun:  # fmt: skip
    """Resolve a run from what a caller sets, once.

    Args:
        files: YAML config file(s); later ones win.
        sets: ``KEY=VALUE`` overrides, applied after ``flags``.
        flags: config keys a caller sets (``section__key``; None: not given).
        out: the run folder (read when ``resume``).
        resume: continue the run in ``out``: its own config, taking only :data:`RESUMABLE` keys anew;
            any other key set here that differs from the run's is refused in one line.
        last: nested keys applied after ``sets`` (the CLI's ``--ssl-checkpoint``).
        flag_names: ``section.key`` -> the caller's name for it, used in error messages.

    Returns:
        The :class:`ResolvedRun` that ``train`` takes.

    Raises:
        NexnetError: an unknown key, a bad value, a model that does not build, or a change on resume.
    """
    asked = requested(files, sets, **(flags or {}))
    for section, values in (last or {}).items():
        asked.setdefault(section, {}).update(values)
    asked = absolute_paths(asked)
    if not resume:
        return finish(resolved(asked), flag_names)
    if out is None:
        raise NexnetError("resume: name the run folder to continue")
    saved = RunFolder(Path(out)).read_run_config()
    refuse_changes_on_resume(saved.to_dict(), _as_saved(saved, asked), out, RESUMABLE)
    anew = {section: {k: v for k, v in values.items() if f"{section}.{k}" in RESUMABLE}
            for section, values in asked.items()}  # fmt: skip
    return finish(saved.merged(anew), flag_names, resumed_from=out)


def resolve_config(cfg: RunConfig | dict, resume_from: str | Path | None = None) -> ResolvedRun:
    """A config given from Python, resolved as :func:`resolve_run` resolves a command line's: paths
    made absolute and the model built. With ``resume_from``, the model is the one that run recorded
    (read once, upgraded from older releases), whatever ``cfg`` says of it; a run of another model
    is refused in one line."""
    given = absolute_paths(RunConfig.from_dict(cfg).to_dict())
    if resume_from is None:
        return finish(given)
    saved = RunFolder(Path(resume_from)).read_run_config()
    if given["model"]["name"] != saved.model_name:
        raise NexnetError(f"{resume_from}: holds a run of {saved.model_name!r}, not {given['model']['name']!r}; "
                          "resume it as it was")  # fmt: skip
    return finish({**given, "model": saved.model}, resumed_from=resume_from)


def finish(cfg: RunConfig | dict, flag_names: Mapping[str, str] | None = None,
           resumed_from: str | Path | None = None) -> ResolvedRun:  # fmt: skip
    """Build ``cfg``'s model (seeded with ``train.seed``), record its full keyword set in the config,
    and check the run's numbers, each refused in one line before any image is decoded.
    ``resumed_from``: the run folder ``cfg`` is the own config of (to resume it)."""
    cfg = RunConfig.from_dict(cfg if isinstance(cfg, dict) else cfg.to_dict())  # the caller's stays as it was
    name = cfg.model_name
    if name == "ssl_autoencoder":
        raise NexnetError("ssl_autoencoder is the SSL pretraining model: train it with nexnet pretrain")
    torch.manual_seed(cfg.train.seed)
    model = create_model(name, **cfg.model_kwargs())
    # The full keyword set, so that a resumed run rebuilds this model even if defaults change.
    cfg.model = {"name": name, **model.config}
    check_run_numbers(cfg, model.size_multiple, name, flag_names)
    return ResolvedRun(cfg, model, Path(resumed_from) if resumed_from is not None else None)


def absolute_paths(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (nested like a config) with its data root, split file and SSL checkpoint made
    absolute, so that ``--resume`` works from any folder."""
    data, tc = values.get("data") or {}, values.get("train") or {}
    if data.get("data_root"):
        data["data_root"] = str(Path(data["data_root"]).resolve())
    if data.get("split") and Path(str(data["split"])).is_file():  # a split.json, not a split's name
        data["split"] = str(Path(data["split"]).resolve())
    if tc.get("ssl_checkpoint"):
        tc["ssl_checkpoint"] = str(Path(tc["ssl_checkpoint"]).resolve())
    return values


def _as_saved(saved: RunConfig, asked: dict) -> dict:
    """``asked`` with its model keys as the saved run's model records them: a keyword that differs
    from the run's own is built on the run's keywords, so that a name for the same thing (a form made
    custom by another keyword) compares equal."""
    wanted = asked.get("model")
    if not wanted or wanted.get("name", saved.model_name) != saved.model_name:
        return asked
    kwargs = {k: v for k, v in wanted.items() if k != "name"}
    if all(saved.model.get(k) == v for k, v in kwargs.items()):
        return asked
    built = create_model(saved.model_name, **{**saved.model_kwargs(), **kwargs}).config
    return {**asked, "model": {k: built.get(k, v) for k, v in wanted.items()}}


def refuse_changes_on_resume(saved: dict, asked: dict, out: object, allowed: tuple[str, ...]) -> None:
    """``--resume`` continues a run as it was saved. A value the caller sets (``asked``, nested like
    ``saved``) that differs from the saved run is refused in one line, never silently ignored;
    repeating the run's own command with ``--resume`` is fine. ``allowed``: ``section.key`` names a
    resumed run may take anew."""
    before = _flat(saved)
    for key, value in _flat(asked).items():
        if key not in allowed and before.get(key) != value:
            raise NexnetError(f"--resume: {key} is {before.get(key)!r} in the run in {out}, {value!r} on this "
                              f"command line; a resumed run takes only {', '.join(allowed)} anew; choose a new "
                              "--out to change anything else")  # fmt: skip


def _flat(nested: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in nested.items():
        if isinstance(v, dict) and not prefix:
            out.update(_flat(v, f"{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
