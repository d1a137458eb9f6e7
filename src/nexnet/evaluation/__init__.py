"""Evaluation: per-case metrics, ``evaluate`` (a checkpoint on a split), ``score`` (any mask folder),
summaries and the authors' protocol."""

from .evaluator import evaluate
from .metrics import VALIDATION_METRICS, batch_dice_iou, batch_metrics, case_metrics
from .scorer import score
from .summary import format_summary, summarise

__all__ = [
    "VALIDATION_METRICS",
    "batch_dice_iou",
    "batch_metrics",
    "case_metrics",
    "evaluate",
    "format_summary",
    "score",
    "summarise",
]
