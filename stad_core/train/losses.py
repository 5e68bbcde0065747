"""Multi-label action losses: BCE, sigmoid focal, and AVA's pose-softmax mix.

``pose_softmax``: AVA's pose classes (PERSON_MOVEMENT: stand, sit, walk, ...) are mutually exclusive
per person, so their logits share one softmax with a cross-entropy loss (target: the person's pose
labels, normalised; people without a pose label add no pose term); every other class keeps an
independent sigmoid with BCE. Scores follow the same split (``ActionLoss.scores``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from stad_core.train.config import LossName


class ActionLoss:
    """loss(logits [N, K], targets [N, K] float 0/1) -> scalar; scores(logits) -> [N, K] in [0, 1]."""

    def __init__(
        self,
        name: LossName,
        *,
        pose_columns: Tensor | None = None,
        focal_gamma: float = 2.0,
        focal_alpha: float | None = None,
    ) -> None:
        if name == "pose_softmax" and (pose_columns is None or pose_columns.numel() == 0):
            raise ValueError("the pose_softmax loss needs pose classes (a label map with label types)")
        self.name = name
        self.pose_columns = pose_columns
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha

    def _split(self, k: int, device: torch.device) -> tuple[Tensor, Tensor]:
        is_pose = torch.zeros(k, dtype=torch.bool, device=device)
        is_pose[self.pose_columns.to(device)] = True
        return is_pose, ~is_pose

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.name == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets)
        if self.name == "focal":
            alpha = -1.0 if self.focal_alpha is None else self.focal_alpha
            return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=self.focal_gamma, reduction="mean")
        is_pose, other = self._split(logits.shape[1], logits.device)
        pose_t = targets[:, is_pose]  # [N, P]
        has_pose = pose_t.sum(1) > 0  # [N]
        loss = logits.new_zeros(())
        if has_pose.any():
            dist = pose_t[has_pose] / pose_t[has_pose].sum(1, keepdim=True)
            loss = loss + F.cross_entropy(logits[has_pose][:, is_pose], dist)
        if other.any():
            loss = loss + F.binary_cross_entropy_with_logits(logits[:, other], targets[:, other])
        return loss

    def scores(self, logits: Tensor) -> Tensor:
        """Per-class scores in [0, 1]: sigmoid, with a softmax over the pose columns for pose_softmax."""
        probs = torch.sigmoid(logits)
        if self.name == "pose_softmax":
            is_pose, _ = self._split(logits.shape[1], logits.device)
            probs[:, is_pose] = torch.softmax(logits[:, is_pose], dim=1)
        return probs
