"""Learning-rate schedules per epoch, each after a linear warm-up: plateau (the paper's) or cosine."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import NexnetError
from .run_config import TrainConfig

SCHEDULES = ("plateau", "cosine")


@dataclass
class WarmupPlateau:
    """Learning rate per epoch: ``base * (epoch + 1) / warmup`` during warm-up, then multiplied by
    ``factor`` after ``patience`` epochs without a better validation score, down to ``min_lr``."""

    base_lr: float
    warmup_epochs: int = 5
    factor: float = 0.5
    patience: int = 10
    min_lr: float = 1e-6
    lr: float = 0.0
    best: float = float("-inf")
    bad_epochs: int = 0

    def lr_for(self, epoch: int, progress: float = 0.0) -> float:
        """The learning rate to use in ``epoch`` (0-based); ``progress`` is unused here."""
        if epoch < self.warmup_epochs:
            self.lr = self.base_lr * (epoch + 1) / self.warmup_epochs
        elif self.lr == 0.0:
            self.lr = self.base_lr
        return self.lr

    def step(self, epoch: int, score: float) -> None:
        """Record the validation ``score`` (higher is better) at the end of ``epoch``."""
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            return
        if epoch < self.warmup_epochs:
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.lr = max(self.min_lr, self.lr * self.factor)
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


@dataclass
class WarmupCosine:
    """Linear warm-up over ``warmup_epochs``, then a cosine from ``base_lr`` down to ``min_lr``.

    ``progress`` in [0, 1] says how much of the run's budget is spent when an epoch starts: the
    fraction of its epochs, or of its time budget when that is the larger (``train.max_minutes``),
    so that a run cut by time still ends at a low learning rate.
    """

    base_lr: float
    warmup_epochs: int = 1
    min_lr: float = 1e-6
    lr: float = 0.0

    def lr_for(self, epoch: int, progress: float = 0.0) -> float:
        if epoch < self.warmup_epochs:
            self.lr = self.base_lr * (epoch + 1) / self.warmup_epochs
        else:
            cosine = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
            self.lr = self.min_lr + (self.base_lr - self.min_lr) * cosine
        return self.lr

    def step(self, epoch: int, score: float) -> None:
        """Validation scores do not steer a cosine schedule."""

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def budget_reached(elapsed: float, last_epoch: float, max_minutes: float | None) -> bool:
    """Whether another epoch as long as the last one would pass the time budget: where a run stops
    (``--max-minutes``: "stop before an epoch would pass it"), and why a resumed one trains no further."""
    return bool(max_minutes) and elapsed + last_epoch > max_minutes * 60


def budget_spent(max_minutes: float, elapsed: float) -> str:
    """What a resumed run whose budget is spent says (training and SSL pretraining alike)."""
    trained = f"{elapsed:.0f} s" if elapsed < 60 else f"{elapsed / 60:.1f} min"
    return (f"the time budget of {max_minutes:g} min is spent ({trained} trained, and an epoch would pass it); "
            "resume with a larger --max-minutes to train on")  # fmt: skip


def warmup_for(tc: TrainConfig) -> tuple[int, str]:
    """The warm-up the schedule uses: ``tc.warmup_epochs``, or a quarter of the run where that would
    last it all (and so never reach ``lr``); with the note to print ('' if none). The config keeps
    what was asked."""
    if tc.warmup_epochs < tc.epochs or tc.warmup_epochs == 0:
        return tc.warmup_epochs, ""
    short = tc.epochs // 4
    return short, (f"note: the {tc.warmup_epochs}-epoch warm-up would outlast the {tc.epochs}-epoch run and never "
                   f"reach lr {tc.lr:g}; shortened to {short} (set train.warmup_epochs to choose)")  # fmt: skip


def make_schedule(tc: TrainConfig) -> WarmupPlateau | WarmupCosine:
    """The schedule ``tc.schedule`` names, from the ``train`` config section."""
    name, warmup = tc.schedule, warmup_for(tc)[0]
    if name == "cosine":
        return WarmupCosine(tc.lr, warmup, tc.min_lr)
    if name == "plateau":
        return WarmupPlateau(tc.lr, warmup, tc.plateau_factor, tc.plateau_patience, tc.min_lr)
    raise NexnetError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")
