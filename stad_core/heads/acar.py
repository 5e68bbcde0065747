"""ACAR head with HR2O (Actor-Context-Actor Relation network, Pan et al. 2021), and its ACFB variant.

1. First-order actor-context features: the clip's context map is reduced by a 1x1 conv
   (C -> reduced_dim, 2304 -> 1024 for SlowFast R50), each actor's vector is tiled over it and
   concatenated, then a 1x1 and a 3x3 conv (each with a per-position LayerNorm and ReLU) map every position to
   ``latent_dim`` (512), and a 2x2 max-pool halves the map: ``F_i`` [E, h', w'] per actor.
2. HR2O (high-order relation operator): at every spatial position, each actor of a clip attends over
   all actors of the same clip (query/key/value 3x3 convs, scaled dot-product); the result goes
   through GroupNorm -> ReLU -> 1x1 conv -> dropout and is added back to ``F_i``. ``depth`` layers.
3. The relation map is average-pooled and classified together with the actor's own vector.

Batching: actors are padded per clip with a mask inside HR2O, so padding is never attended and a
batch of many clips gives each actor the output it gets when its clip runs alone (the reference
implementation can only run one clip per GPU for want of this). Every other step is per actor, and
GroupNorm normalises each actor's map on its own, so no statistic crosses actors.

ACFB (actor-context feature bank) is the same network whose actors also attend over a window of stored
first-order features (see ``ACFBHead`` and docs/heads.md).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from stad_core.heads.input_norm import InputNorm
from stad_core.heads.inputs import HeadInputs, box_masks, masked_softmax, pad_by_clip


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels at every position of a map: [N, C, h, w] -> [N, C, h, w]."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class HR2OLayer(nn.Module):
    """Attention across the actors of each clip at every spatial position: x [N, E, h, w] -> [N, E, h, w]."""

    def __init__(self, dim: int, *, norm_groups: int, dropout: float) -> None:
        super().__init__()
        self.query = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.key = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.value = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
        self.norm = nn.GroupNorm(norm_groups, dim)
        self.out = nn.Conv2d(dim, dim, kernel_size=1)
        self.dropout = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: Tensor, clip_index: Tensor, num_clips: int) -> Tensor:
        n, e, h, w = x.shape
        q, _, slot = pad_by_clip(self.query(x).flatten(2), clip_index, num_clips)  # [B, M, E, P]
        k, actor_mask, _ = pad_by_clip(self.key(x).flatten(2), clip_index, num_clips)  # [B, M, E, P]
        v, _, _ = pad_by_clip(self.value(x).flatten(2), clip_index, num_clips)  # [B, M, E, P]
        scores = torch.einsum("bmep,bnep->bpmn", q, k) * self.scale  # [B, P, M, M]
        att = masked_softmax(scores, actor_mask[:, None, None, :])  # [B, P, M, M]
        r = torch.einsum("bpmn,bnep->bmep", att, v)  # [B, M, E, P]
        r = r[clip_index, slot].reshape(n, e, h, w)  # [N, E, h, w]
        r = self.out(torch.relu(self.norm(r)))
        return x + self.dropout(r)


class ACARHead(nn.Module):
    uses_context: ClassVar[bool] = True
    uses_long_term: ClassVar[bool] = False
    uses_actor_context: ClassVar[bool] = False

    def __init__(
        self,
        actor_dim: int,
        context_dim: int,
        num_classes: int,
        *,
        reduced_dim: int = 1024,
        latent_dim: int = 512,
        depth: int = 1,
        norm_groups: int = 32,
        hr2o_dropout: float = 0.2,
        dropout: float = 0.5,
        actor_location: bool = True,
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        self.input_norm = InputNorm(actor_dim) if input_norm else None
        self.latent_dim = latent_dim
        self.reduce_context = nn.Sequential(nn.Conv2d(context_dim, reduced_dim, kernel_size=1), nn.ReLU(inplace=True))
        # 1x1 conv over [tiled actor, context] = actor part + context part (see first_order_maps)
        self.actor_proj = nn.Linear(actor_dim, latent_dim, bias=False)
        self.context_proj = nn.Conv2d(reduced_dim, latent_dim, kernel_size=1)
        self.location_proj = nn.Conv2d(1, latent_dim, kernel_size=1, bias=False) if actor_location else None
        # A norm after each conv: without one the deeper ACAR path trained far slower than ACRN's
        # BatchNorm'd one on small banks. Per-position LayerNorm over channels, not BatchNorm (keeps every
        # actor's map independent of the batch) and not GroupNorm (whose mean over the map removes what is
        # the same everywhere, such as a scene-wide change, from the features an ACFB bank stores).
        self.first_order = nn.Sequential(
            ChannelNorm(latent_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(latent_dim, latent_dim, kernel_size=3, padding=1, bias=False),
            ChannelNorm(latent_dim),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True),
        )
        self.hr2o = nn.ModuleList(
            HR2OLayer(latent_dim, norm_groups=norm_groups, dropout=hr2o_dropout) for _ in range(depth)
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(actor_dim + latent_dim, num_classes)

    def first_order_maps(self, inputs: HeadInputs) -> Tensor:
        """First-order actor-context maps ``F_i``: [N, E, ceil(h/2), ceil(w/2)]."""
        if inputs.context is None:
            raise ValueError(f"{type(self).__name__} needs inputs.context [B, C, h, w]")
        context = self.context_proj(self.reduce_context(inputs.context))  # [B, E, h, w]
        actor = self.actor_proj(inputs.actor_features)  # [N, E]
        # == a 1x1 conv over the concatenation [actor tiled over h x w, context] ([N, D + C', h, w]),
        # without materialising that tensor (N x 3328 x h x w floats for SlowFast R50).
        x = context[inputs.clip_index] + actor[:, :, None, None]  # [N, E, h, w]
        if self.location_proj is not None:  # where the actor is on the grid (its box's cell coverage)
            x = x + self.location_proj(box_masks(inputs.actor_boxes, *x.shape[2:]))  # [N, E, h, w]
        return self.first_order(x)  # [N, E, h', w']

    def actor_context_features(self, inputs: HeadInputs) -> Tensor:
        """What an actor-context bank stores: the first-order maps averaged over space, [N, E]."""
        if self.input_norm is not None:
            inputs = self.input_norm(inputs)  # fixed standardisation of the rows (input_norm)
        return self.first_order_maps(inputs).mean(dim=(2, 3))

    def relation_features(self, first_order: Tensor, inputs: HeadInputs) -> Tensor:
        """HR2O over the first-order maps [N, E, h', w'], average-pooled: [N, E]."""
        x = first_order
        for layer in self.hr2o:
            x = layer(x, inputs.clip_index, inputs.num_clips)  # [N, E, h', w']
        return x.mean(dim=(2, 3))  # [N, E]

    def classify(self, inputs: HeadInputs, relation: Tensor) -> Tensor:
        x = self.dropout(torch.cat([inputs.actor_features, relation], dim=1))  # [N, D + E]
        return self.classifier(x)  # [N, K]

    def forward(self, inputs: HeadInputs) -> Tensor:
        if self.input_norm is not None:
            inputs = self.input_norm(inputs)  # fixed standardisation of the rows (input_norm)
        first_order = self.first_order_maps(inputs)  # [N, E, h', w']
        return self.classify(inputs, self.relation_features(first_order, inputs))
