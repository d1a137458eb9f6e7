"""Linear warm-up, then ReduceLROnPlateau on validation Dice; and early stopping."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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

    def lr_for(self, epoch: int) -> float:
        """The learning rate to use in ``epoch`` (0-based)."""
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
