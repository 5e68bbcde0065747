"""``TrainConfig``: everything that defines a head-training run (and so its checkpoint identity)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stad_core.config import StageConfig
from stad_core.heads import HeadArchitecture

LossName = Literal["bce", "focal", "pose_softmax"]
OptimizerName = Literal["sgd", "adamw"]
ScheduleName = Literal["cosine", "step", "constant"]


class TrainConfig(StageConfig, HeadArchitecture):
    """The head (its name and dimensions: ``HeadArchitecture``'s fields) and how it is trained.

    Flat, so the YAML files and checkpoints list every setting side by side; ``build_head(config)``
    builds the head straight from it.
    """

    # data
    window_width: int = Field(60, gt=0)
    window_per_second: int = Field(5, gt=0)
    label_iou: float = Field(0.9, gt=0.0, le=1.0)
    # loss
    loss: LossName = "bce"
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    # optimisation
    optimizer: OptimizerName = "sgd"
    lr: float = Field(0.04, gt=0.0)
    momentum: float = 0.9
    weight_decay: float = 1e-7
    grad_clip: float | None = None
    schedule: ScheduleName = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0)
    warmup_start_factor: float = Field(0.1, gt=0.0, le=1.0)
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    min_lr_factor: float = Field(0.0, ge=0.0, le=1.0)
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(16, gt=0)
    seed: int = 0
    # checkpoints: also every N optimizer steps (0 = only at the end of each epoch)
    checkpoint_every: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _milestones_sorted(self) -> TrainConfig:
        if list(self.lr_milestones) != sorted(self.lr_milestones):
            raise ValueError("lr_milestones must be increasing epochs")
        return self
