"""The one typed batch every relation head takes, plus the per-clip padding helpers.

A batch holds ``B`` keyframe clips and ``N`` actors in total; ``clip_index[i]`` says which clip actor
``i`` belongs to. Per-clip tensors (context map, long-term window, actor-context window) have a leading
``B`` axis; per-actor tensors a leading ``N`` axis. Heads that relate actors of one clip (ACAR, ACFB)
pad actors per clip internally and mask the padding, so any way of batching clips gives every actor
the same output as running its clip alone.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class HeadInputs:
    """One batch of ``B`` keyframe clips with ``N`` actors.

    actor_features:     [N, D]          RoI vector of each actor at the keyframe (pooled at extraction)
    actor_boxes:        [N, 4]          normalised x1, y1, x2, y2
    clip_index:         [N] int64       clip of each actor, in [0, B)
    num_clips:          B               (a clip may have no actors)
    context:            [B, C, h, w]    pooled context map of each clip, or None
    long_term:          [B, L, D_lt]    long-term bank window of each clip, or None
    long_term_mask:     [B, L] bool     True where ``long_term`` holds a real row (False = padding)
    actor_context:      [B, L2, D_ac]   actor-context bank window (ACFB), or None
    actor_context_mask: [B, L2] bool    True where ``actor_context`` holds a real row
    """

    actor_features: Tensor
    actor_boxes: Tensor
    clip_index: Tensor
    num_clips: int
    context: Tensor | None = None
    long_term: Tensor | None = None
    long_term_mask: Tensor | None = None
    actor_context: Tensor | None = None
    actor_context_mask: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.actor_features.shape[0]
        if self.actor_features.dim() != 2:
            raise ValueError(f"actor_features must be [N, D], got {tuple(self.actor_features.shape)}")
        if tuple(self.actor_boxes.shape) != (n, 4):
            raise ValueError(f"actor_boxes must be [{n}, 4], got {tuple(self.actor_boxes.shape)}")
        if tuple(self.clip_index.shape) != (n,) or self.clip_index.dtype != torch.int64:
            raise ValueError(f"clip_index must be int64 [{n}], got {self.clip_index.dtype} {tuple(self.clip_index.shape)}")
        if n and (int(self.clip_index.min()) < 0 or int(self.clip_index.max()) >= self.num_clips):
            raise ValueError(f"clip_index values must lie in [0, {self.num_clips})")
        for name in ("context", "long_term", "actor_context"):
            value = getattr(self, name)
            if value is not None and value.shape[0] != self.num_clips:
                raise ValueError(f"{name} has {value.shape[0]} clips, expected {self.num_clips}")
        for name, mask_name in (("long_term", "long_term_mask"), ("actor_context", "actor_context_mask")):
            value, mask = getattr(self, name), getattr(self, mask_name)
            if (value is None) != (mask is None):
                raise ValueError(f"{name} and {mask_name} must be given together")
            if value is not None and (mask.dtype != torch.bool or tuple(mask.shape) != tuple(value.shape[:2])):
                raise ValueError(f"{mask_name} must be bool {tuple(value.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")

    @property
    def num_actors(self) -> int:
        return self.actor_features.shape[0]

    def to(self, device: torch.device | str) -> HeadInputs:
        """The same batch with every tensor moved to ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)


def actor_slots(clip_index: Tensor, num_clips: int) -> tuple[Tensor, int]:
    """Position of each actor inside its clip (stable: order of appearance) and the largest clip size.

    clip_index: [N] -> slot: [N] int64, M = max actors per clip (0 when N == 0)
    """
    n = clip_index.shape[0]
    if n == 0:
        return clip_index.new_zeros(0), 0
    counts = torch.bincount(clip_index, minlength=num_clips)  # [B]
    starts = torch.cumsum(counts, 0) - counts  # [B] first sorted position of each clip
    order = torch.argsort(clip_index, stable=True)  # [N]
    slot = torch.empty_like(clip_index)
    slot[order] = torch.arange(n, device=clip_index.device) - starts[clip_index[order]]
    return slot, int(counts.max())


def pad_by_clip(x: Tensor, clip_index: Tensor, num_clips: int) -> tuple[Tensor, Tensor, Tensor]:
    """Scatter per-actor rows into a zero-padded per-clip layout.

    x: [N, *F] -> padded: [B, M, *F], mask: [B, M] bool (True = real actor), slot: [N]
    ``padded[clip_index, slot]`` gives ``x`` back.
    """
    slot, m = actor_slots(clip_index, num_clips)
    padded = x.new_zeros((num_clips, m, *x.shape[1:]))
    padded[clip_index, slot] = x
    mask = torch.zeros(num_clips, m, dtype=torch.bool, device=x.device)
    mask[clip_index, slot] = True
    return padded, mask, slot


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """Where each actor is on a context grid: the share of every cell its box covers.

    boxes: [N, 4] normalised x1, y1, x2, y2 -> [N, 1, height, width] in [0, 1]. Context heads tile the
    actor's vector over the map, which says *who* but not *where*; this map says where.
    """
    def cover(lo: Tensor, hi: Tensor, cells: int) -> Tensor:  # [N], [N] -> [N, cells]
        edges = torch.arange(cells + 1, device=boxes.device, dtype=boxes.dtype) / cells  # [cells + 1]
        overlap = torch.minimum(hi[:, None], edges[None, 1:]) - torch.maximum(lo[:, None], edges[None, :-1])
        return overlap.clamp(min=0) * cells  # share of each cell's extent

    ys = cover(boxes[:, 1], boxes[:, 3], height)  # [N, h]
    xs = cover(boxes[:, 0], boxes[:, 2], width)  # [N, w]
    return (ys[:, :, None] * xs[:, None, :])[:, None]  # [N, 1, h, w]


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis that gives exactly zero weight to masked-out keys.

    scores: [..., K], mask: broadcastable to scores, True = may be attended.
    A row with no valid key gets all-zero weights (not NaN).
    """
    mask = mask.expand_as(scores)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    return weights * mask.any(dim=-1, keepdim=True) * mask
