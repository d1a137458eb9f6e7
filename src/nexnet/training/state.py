"""The resumable training state in ``last/``: safetensors for tensors, JSON for the rest, no pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from ..errors import NexnetError
from ..io import atomic_directory, atomic_write_bytes, atomic_write_json, restore_interrupted
from ..models.base import CONFIG_NAME, checkpoint_config, state_dict_tensors

TENSOR = "__tensor__"


def split_tensors(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested structure by a reference, collecting the tensors."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {TENSOR: prefix}
    if isinstance(obj, dict):
        return {str(k): split_tensors(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def join_tensors(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {TENSOR}:
            return tensors[obj[TENSOR]]
        return {k: join_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [join_tensors(v, tensors) for v in obj]
    return obj


def _int_keys(state: dict) -> dict:
    """Optimizer state dicts key per-parameter state by int; JSON made them strings."""
    state["state"] = {int(k): v for k, v in state["state"].items()}
    return state


def save_training_state(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        extra: dict[str, Any], checkpoint_extra: dict[str, Any] | None = None,
                        json_files: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Write ``model.safetensors``, ``state.safetensors`` and ``state.json`` as one folder, atomically;
    with ``checkpoint_extra``, also ``config.json``, so that the folder loads like ``best/``, and
    ``json_files`` (name -> content: the split and seen images that evaluation checks against)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = {
        "optimizer": split_tensors(optimizer.state_dict(), "optimizer", tensors),
        "rng": split_tensors({"torch": torch.get_rng_state()}, "rng", tensors),
        **split_tensors(extra, "extra", tensors),  # a weight average's tensors, say
    }
    weights = state_dict_tensors(model)
    with atomic_directory(directory) as tmp:
        atomic_write_bytes(tmp / "model.safetensors", save(weights))
        atomic_write_bytes(tmp / "state.safetensors", save(tensors) if tensors else save({}))
        atomic_write_json(tmp / "state.json", skeleton)
        if checkpoint_extra is not None:
            atomic_write_json(tmp / CONFIG_NAME, checkpoint_config(model, checkpoint_extra))
        for file_name, content in (json_files or {}).items():
            atomic_write_json(tmp / file_name, content)


def _match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give loaded per-parameter state (saved contiguous) its parameter's memory layout again."""
    for p, st in optimizer.state.items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable")


def _keep_implementation(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """Give the saved groups the live optimizer's implementation flags: ``load_state_dict`` copies
    every group setting, so a run saved before the fused step would resume unfused (and, with a
    GradScaler, fail: the optimizer was built to take the scaler's ``found_inf``)."""
    for old, live in zip(saved["param_groups"], optimizer.param_groups):
        for key in IMPLEMENTATION_KEYS:
            if key in live:
                old[key] = live[key]


def load_training_state(directory: Path, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> dict[str, Any]:  # fmt: skip
    """Restore model, optimizer and RNG from ``directory``; return the rest of ``state.json``."""
    restore_interrupted(directory)  # a kill between the two renames of a save
    files = [directory / n for n in ("model.safetensors", "state.safetensors", "state.json")]
    if not all(f.is_file() for f in files):
        raise NexnetError(f"{directory}: no resumable state (needs model.safetensors, state.safetensors, "
                          "state.json); start without --resume")  # fmt: skip
    model.load_state_dict(load_file(files[0]))
    tensors = load_file(files[1])
    state = join_tensors(json.loads(files[2].read_text()), tensors)
    saved = _int_keys(state.pop("optimizer"))
    _keep_implementation(saved, optimizer)
    optimizer.load_state_dict(saved)
    _match_parameter_layouts(optimizer)
    torch.set_rng_state(state.pop("rng")["torch"])
    return state
