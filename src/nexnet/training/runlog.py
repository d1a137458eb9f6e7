"""A run folder's log: ``log.csv`` (one row per epoch) and ``curves.png``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..evaluation import VALIDATION_METRICS
from ..io import atomic_write_text
from ..plots import line_chart

LOG_FIELDS = ["epoch", "train_loss", "val_loss", *[f"val_{name}" for name in VALIDATION_METRICS], "lr", "seconds",
              "skipped_batches", "optimizer_steps", "best"]  # fmt: skip


def log_fields(rows: list[dict], first: list[str] = LOG_FIELDS) -> list[str]:
    """``first``, then any other key of ``rows`` in order of appearance (diagnostics)."""
    fields = list(first)
    for r in rows:
        fields += [k for k in r if k not in fields]
    return fields


def write_log(path: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    fields = fields or log_fields(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in fields})
    atomic_write_text(path, buf.getvalue())


def write_curves(path: Path, rows: list[dict]) -> None:
    """Loss and validation panels; gradient-norm and T-PEN panels when the rows hold them."""
    epochs = [int(r["epoch"]) for r in rows]

    def col(name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in ("", None) else float("nan") for r in rows]

    panels = [
        ("loss", {"train loss": col("train_loss"), "val loss": col("val_loss")}),
        (
            "validation (network resolution)",
            {f"val {label}": col(f"val_{name}") for name, label in VALIDATION_METRICS.items()},
            (0, 1),
        ),  # fmt: skip
    ]
    if any("grad_norm_median" in r for r in rows):
        panels += [
            ("gradient norm before clipping", {"median": col("grad_norm_median"), "max": col("grad_norm_max")}),
            ("fraction of steps clipped", {"clipped": col("clipped_fraction")}, (0, 1)),
        ]
    levels = sorted({int(k[4:-5]) for r in rows for k in r if k.startswith("tpen") and k.endswith("_p999")})
    if levels:
        panels += [
            ("T-PEN input |x|, 99.9th percentile", {f"level {i}": col(f"tpen{i}_p999") for i in levels}),
            ("T-PEN input fraction clamped", {f"level {i}": col(f"tpen{i}_clamped") for i in levels}),
        ]
    line_chart(path, epochs, panels, x_label="epoch", columns=2 if len(panels) > 2 else len(panels))
