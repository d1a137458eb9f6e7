"""Evaluation: per-case metrics, ``evaluate`` (a checkpoint on a split), ``score`` (any mask folder),
summaries and the authors' protocol."""

from .evaluator import evaluate
from .metrics import batch_dice_iou, case_metrics
from .scorer import score
from .summary import format_summary, summarise

__all__ = ["batch_dice_iou", "case_metrics", "evaluate", "format_summary", "score", "summarise"]
