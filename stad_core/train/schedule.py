"""Learning-rate schedules as pure functions of the optimizer step (so resuming needs only the step).

Head training (:class:`LRSchedule`): lr(step) = base_lr * factor(step): a linear warm-up from
``warmup_start_factor`` to 1 over the first ``warmup_steps``, then cosine decay to ``min_factor`` at
``total_steps``, or a step decay by ``gamma`` at each milestone epoch, or constant.

Backbone fine-tuning and detector training (:class:`WarmupSteps`): the whole optimisation step of
their loops -- lr = base_lr * :func:`warmup_factor` (a linear warm-up to a constant rate, or with
``cosine`` then a cosine decay to 0), then loss, zero-grad, backward, step, count, report.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from stad_core.progress import ProgressFn, report
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


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Multiplier of the base lr for optimizer step ``step`` (0-based) under a linear warm-up:
    ``min(1, (step + 1) / warmup_steps)`` (1 from step ``warmup_steps - 1`` on); 1 if ``warmup_steps`` is 0."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0


@dataclass
class WarmupSteps:
    """Optimizer steps with a linear warm-up to a constant rate, counted across epochs.

    ``steps(loss_of)`` sets every parameter group's lr to ``base_lr * warmup_factor(step)``, calls
    ``loss_of()`` (the forward pass, a scalar tensor), zeroes the grads, back-propagates, steps the
    optimizer, counts the step, reports ``(step, total)`` to ``on_progress`` and returns the loss
    value. ``step`` starts where a resumed run left off.
    """

    optimizer: torch.optim.Optimizer
    base_lr: float
    warmup_steps: int
    total: int
    step: int = 0
    on_progress: ProgressFn | None = None
    cosine: bool = False  # after the warm-up, decay to 0 at ``total`` (half a cosine) instead of staying

    def __call__(self, loss_of: Callable[[], torch.Tensor]) -> float:
        warm = warmup_factor(self.step, self.warmup_steps)
        if self.cosine and self.step >= self.warmup_steps:
            progress = min((self.step - self.warmup_steps) / max(self.total - self.warmup_steps, 1), 1.0)
            warm *= 0.5 * (1.0 + math.cos(math.pi * progress))
        for group in self.optimizer.param_groups:
            group["lr"] = self.base_lr * warm
        loss = loss_of()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        value = loss.item()
        self.step += 1
        report(self.on_progress, self.step, self.total)
        return value
