"""ACRN head (Actor-Centric Relation Network, Sun et al. 2018).

Each actor's vector is tiled over its clip's context map and concatenated with it (and, with
``actor_location``, with a map of where the actor's box lies on the grid); two conv layers
(1x1 then 3x3, each with BatchNorm and ReLU) turn every position into an actor-context relation
feature; these are average-pooled and classified together with the actor's own vector.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from stad_core.heads.input_norm import InputNorm
from stad_core.heads.inputs import HeadInputs, box_masks


class ACRNHead(nn.Module):
    uses_context: ClassVar[bool] = True
    uses_long_term: ClassVar[bool] = False
    uses_actor_context: ClassVar[bool] = False

    def __init__(
        self,
        actor_dim: int,
        context_dim: int,
        num_classes: int,
        *,
        relation_dim: int = 512,
        dropout: float = 0.5,
        actor_location: bool = True,
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        self.input_norm = InputNorm(actor_dim) if input_norm else None
        # 1x1 conv over [tiled actor, context, box mask] = actor part + context part + mask part
        self.actor_proj = nn.Linear(actor_dim, relation_dim, bias=False)
        self.context_proj = nn.Conv2d(context_dim, relation_dim, kernel_size=1, bias=False)
        self.location_proj = nn.Conv2d(1, relation_dim, kernel_size=1, bias=False) if actor_location else None
        self.relation = nn.Sequential(
            nn.BatchNorm2d(relation_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(relation_dim, relation_dim, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(relation_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(actor_dim + relation_dim, num_classes)

    def forward(self, inputs: HeadInputs) -> Tensor:
        if self.input_norm is not None:
            inputs = self.input_norm(inputs)  # fixed standardisation of the rows (input_norm)
        if inputs.context is None:
            raise ValueError("ACRNHead needs inputs.context [B, C, h, w]")
        actor = inputs.actor_features  # [N, D]
        context = self.context_proj(inputs.context)  # [B, R, h, w]
        # == a 1x1 conv over the concatenation [actor tiled over h x w, context] ([N, D + C, h, w]),
        # without materialising that tensor.
        x = context[inputs.clip_index] + self.actor_proj(actor)[:, :, None, None]  # [N, R, h, w]
        if self.location_proj is not None:
            x = x + self.location_proj(box_masks(inputs.actor_boxes, *x.shape[2:]))  # [N, R, h, w]
        relation = self.relation(x)  # [N, R, h, w]
        relation = relation.mean(dim=(2, 3))  # [N, R]
        x = self.dropout(torch.cat([actor, relation], dim=1))  # [N, D + R]
        return self.classifier(x)  # [N, K]
