"""LFB head (Long-Term Feature Banks, Wu et al. 2019).

A feature bank operator (FBO) relates each actor's short-term vector ``S`` (its RoI vector at the
keyframe) to its clip's long-term window ``L`` (RoI vectors of every actor over about a minute around
the keyframe, at most K per second). The classifier sees ``[S, FBO(S, L)]``.

FBO variants:
- ``avg`` / ``max``: pool ``L`` over the window's valid rows (padding is never pooled).
- ``nl``: a stack of modified non-local blocks. ``S`` and ``L`` are projected to a 512-d latent space
  (dropout 0.2); each block attends from the current query to ``L`` with scaled dot-product attention
  (padding gets zero weight), then LayerNorm -> ReLU -> linear output (zero-initialised, so a fresh
  block is the identity) -> dropout 0.2, added back to the query. Keys/values always come from ``L``;
  the query is refined block by block.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from stad_core.heads.input_norm import InputNorm
from stad_core.heads.inputs import HeadInputs, masked_softmax, pad_by_clip

FBOName = Literal["avg", "max", "nl"]


class NonLocalBlock(nn.Module):
    """One FBO-NL block: query [B, M, E] attends over bank [B, L, E] (mask [B, L])."""

    def __init__(self, latent_dim: int, dropout: float) -> None:
        super().__init__()
        self.query = nn.Linear(latent_dim, latent_dim)
        self.key = nn.Linear(latent_dim, latent_dim)
        self.value = nn.Linear(latent_dim, latent_dim)
        self.norm = nn.LayerNorm(latent_dim)
        self.out = nn.Linear(latent_dim, latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.dropout = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(latent_dim)

    def forward(self, s: Tensor, bank: Tensor, bank_mask: Tensor) -> Tensor:
        q = self.query(s)  # [B, M, E]
        k = self.key(bank)  # [B, L, E]
        v = self.value(bank)  # [B, L, E]
        att = masked_softmax(q @ k.transpose(1, 2) * self.scale, bank_mask[:, None, :])  # [B, M, L]
        r = att @ v  # [B, M, E]
        r = self.out(torch.relu(self.norm(r)))  # pre-activation: LN -> ReLU -> linear
        return s + self.dropout(r)  # [B, M, E]


def attend_window(
    blocks: nn.ModuleList, query: Tensor, window: Tensor, mask: Tensor, clip_index: Tensor, num_clips: int
) -> Tensor:
    """Each actor's query [N, E] refined by ``blocks`` over its clip's window [B, L, E] (mask [B, L]): [N, E]."""
    s, _, slot = pad_by_clip(query, clip_index, num_clips)  # [B, M, E]
    for block in blocks:
        s = block(s, window, mask)  # [B, M, E]
    return s[clip_index, slot]  # [N, E]


class LFBHead(nn.Module):
    uses_context: ClassVar[bool] = False
    uses_long_term: ClassVar[bool] = True
    uses_actor_context: ClassVar[bool] = False

    def __init__(
        self,
        actor_dim: int,
        long_term_dim: int,
        num_classes: int,
        *,
        operator: FBOName = "nl",
        latent_dim: int = 512,
        num_layers: int = 2,
        nl_dropout: float = 0.2,
        dropout: float = 0.3,
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        # long-term rows share the actor rows' map only when they come from the same bank (same width)
        self.input_norm = InputNorm(actor_dim) if input_norm else None
        self.operator = operator
        if operator == "nl":
            self.project_short = nn.Linear(actor_dim, latent_dim)
            self.project_long = nn.Linear(long_term_dim, latent_dim)
            self.input_dropout = nn.Dropout(nl_dropout)
            self.blocks = nn.ModuleList(NonLocalBlock(latent_dim, nl_dropout) for _ in range(num_layers))
            fbo_dim = latent_dim
        elif operator in ("avg", "max"):
            fbo_dim = long_term_dim
        else:
            raise ValueError(f"unknown FBO {operator!r}; expected one of avg, max, nl")
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(actor_dim + fbo_dim, num_classes)

    def feature_bank_operator(self, inputs: HeadInputs) -> Tensor:
        """FBO(S, L) for every actor: [N, fbo_dim]."""
        if inputs.long_term is None or inputs.long_term_mask is None:
            raise ValueError("LFBHead needs inputs.long_term [B, L, D_lt] and long_term_mask [B, L]")
        bank, mask = inputs.long_term, inputs.long_term_mask  # [B, L, D_lt], [B, L]
        if self.operator == "avg":
            weights = mask.to(bank.dtype)[..., None]  # [B, L, 1]
            pooled = (bank * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # [B, D_lt]
            return pooled[inputs.clip_index]  # [N, D_lt]
        if self.operator == "max":
            filled = bank.masked_fill(~mask[..., None], torch.finfo(bank.dtype).min)
            pooled = filled.max(dim=1).values  # [B, D_lt]
            pooled = torch.where(mask.any(1, keepdim=True), pooled, torch.zeros_like(pooled))  # empty window -> 0
            return pooled[inputs.clip_index]  # [N, D_lt]
        s = self.input_dropout(self.project_short(inputs.actor_features))  # [N, E]
        lt = self.input_dropout(self.project_long(bank))  # [B, L, E]
        return attend_window(self.blocks, s, lt, mask, inputs.clip_index, inputs.num_clips)  # [N, E]

    def forward(self, inputs: HeadInputs) -> Tensor:
        if self.input_norm is not None:
            inputs = self.input_norm(inputs)  # fixed standardisation of the rows (input_norm)
        fbo = self.feature_bank_operator(inputs)  # [N, F]
        x = self.dropout(torch.cat([inputs.actor_features, fbo], dim=1))  # [N, D + F]
        return self.classifier(x)  # [N, K]
