"""Helpers shared by the benchmarks: run-time settings, timing, and peak memory in a fresh process."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import yaml
from torch import nn

import nexnet
from nexnet.runtime import autocast as runtime_autocast
from nexnet.runtime import cpu_name, keep_freed_memory, place_model


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    """Device, precision and the two run-time settings the ``nexnet`` command line applies."""
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (T-PEN stays float32)")
    p.add_argument("--compile", action="store_true", help="torch.compile both models first")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's allocator as it is (nexnet's CLI keeps freed memory for reuse)")  # fmt: skip
    p.add_argument("--default-layout", action="store_true",
                   help="NCHW weights for every model (nexnet places conv nets channels_last)")  # fmt: skip


def apply_runtime(args: argparse.Namespace) -> torch.device:
    """Apply the allocator setting and return the device."""
    args.malloc_tuned = False if args.system_malloc else keep_freed_memory()
    return torch.device(args.device)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{cpu_name()} CPU, {torch.get_num_threads()} threads"


def describe(args: argparse.Namespace, dev: torch.device) -> str:
    """One line of what was measured where, for the record."""
    parts = [f"torch {torch.__version__}", device_name(dev), f"amp {'bf16' if args.amp else 'off'}",
             f"layout {'NCHW' if args.default_layout else 'per model'}",
             f"malloc {'kept' if args.malloc_tuned else 'system'}"]  # fmt: skip
    if dev.type == "cuda":
        tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        parts.append(f"tf32 in cuDNN {tf32[0]}, in matmul {tf32[1]}")
    if args.compile:
        parts.append("torch.compile")
    return ", ".join(parts)


def model_spec(spec: str) -> tuple[str, dict]:
    """``"nexnet_seg:form=revised:masa_from=2"`` -> ``("nexnet_seg", {"form": "revised", "masa_from": 2})``;
    values are read as YAML scalars. A plain registry name has no keywords."""
    name, *items = spec.split(":")
    keywords = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"model {spec!r}: write NAME:KEY=VALUE, e.g. nexnet_seg:form=revised")
        keywords[key] = yaml.safe_load(value)
    return name, keywords


def build(spec: str, dev: torch.device, args: argparse.Namespace) -> nn.Module:
    """The model ``spec`` names (a registry name, optionally with ``:KEY=VALUE`` keywords), placed
    as ``nexnet`` places it."""
    name, keywords = model_spec(spec)
    model = place_model(nexnet.create_model(name, **keywords), dev, fast_layout=not args.default_layout)
    return torch.compile(model) if args.compile else model


def autocast(dev: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast when ``amp`` (nexnet's own helper, as training and inference use it)."""
    return runtime_autocast(torch.bfloat16 if amp else None, dev)


def synchronizer(dev: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def alternating_medians(fns: dict[str, Callable[[], object]], rounds: int, repeats: int) -> dict[str, float]:
    """Median over ``rounds`` of each function's median of ``repeats``, the functions taking turns each
    round so that a change in machine load hits all of them."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(median_time(fn, repeats, warmup=1))
    return {k: statistics.median(v) for k, v in times.items()}


def peak_memory_in_child(script: str, *args: str) -> float | None:
    """Run ``script --memory-case ARGS`` in a fresh interpreter and read the MiB it prints.

    A fresh process keeps one case's freed memory from hiding the next one's peak, and a fixed
    mmap threshold makes glibc hand large freed blocks back, so a warmed-up call is measured alone.
    """
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    r = subprocess.run([sys.executable, script, "--memory-case", *args],
                       capture_output=True, text=True, env=env)  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "child failed")
    value = r.stdout.strip().splitlines()[-1]
    return None if value == "None" else float(value)
