"""Helpers shared by the benchmarks: timing, and peak memory in a fresh process."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


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
