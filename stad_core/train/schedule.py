"""Learning-rate schedules as pure functions of the optimizer step (so resuming needs only the step).

lr(step) = base_lr * factor(step): a linear warm-up from ``warmup_start_factor`` to 1 over the first
``warmup_steps``, then cosine decay to ``min_factor`` at ``total_steps``, or a step decay by ``gamma``
at each milestone epoch, or constant.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import torch

from stad_core.train.config import ScheduleName, TrainConfig


@dataclass(frozen=True)
class LRSchedule:
    kind: ScheduleName
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int = 0
    warmup_start_factor: float = 0.1
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_factor: float = 0.0

    @classmethod
    def from_config(cls, config: TrainConfig, steps_per_epoch: int) -> LRSchedule:
        return cls(
            kind=config.schedule,
            total_steps=steps_per_epoch * config.epochs,
            steps_per_epoch=steps_per_epoch,
            warmup_steps=round(config.warmup_epochs * steps_per_epoch),
            warmup_start_factor=config.warmup_start_factor,
            milestones=config.lr_milestones,
            gamma=config.lr_gamma,
            min_factor=config.min_lr_factor,
        )

    def factor(self, step: int) -> float:
        """Multiplier of the base learning rate for optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.warmup_start_factor + (1.0 - self.warmup_start_factor) * step / self.warmup_steps
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min((step - self.warmup_steps) / span, 1.0)
            return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.kind == "step":
            epoch = step // max(self.steps_per_epoch, 1)
            return self.gamma ** bisect.bisect_right(self.milestones, epoch)
        return 1.0

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every parameter group's lr for ``step`` (from its ``initial_lr``); returns the factor."""
        f = self.factor(step)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * f
        return f
