"""Evaluation: per-case metrics, ``evaluate`` (a checkpoint on a split), ``score`` (any mask folder),
summaries and the authors' protocol."""

from .evaluator import evaluate
from .scorer import score
from .summary import format_summary, summarise

__all__ = ["evaluate", "format_summary", "score", "summarise"]
