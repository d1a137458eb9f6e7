"""Training: the ``train`` and ``pretrain`` loops, their config, schedule, losses, state and DDP."""

from .config import DEFAULTS, PAPER_FORM, PAPER_RECIPE, load_yaml, merge, paper_recipe, parse_set, resolve
from .pretrainer import PRETRAIN_DEFAULTS, pretrain
from .resolution import RESUMABLE, ResolvedRun, refuse_changes_on_resume, resolve_run
from .run_config import AugmentConfig, LossConfig, PretrainConfig, RunConfig, TrainConfig
from .run_folder import RunFolder
from .trainer import train

__all__ = [
    "DEFAULTS", "PAPER_FORM", "PAPER_RECIPE", "PRETRAIN_DEFAULTS", "RESUMABLE", "AugmentConfig", "LossConfig",
    "PretrainConfig", "ResolvedRun", "RunConfig", "RunFolder", "TrainConfig", "load_yaml", "merge", "paper_recipe",
    "parse_set", "pretrain", "refuse_changes_on_resume", "resolve", "resolve_run", "train",
]  # fmt: skip
