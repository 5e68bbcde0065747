"""ACFB head: ACAR whose actors also attend over an actor-context feature bank (Pan et al. 2021).

The bank holds, for every actor at every keyframe of a video, the first-order actor-context feature of
a *trained, frozen* ACAR head, averaged over space to one ``D_ac``-vector per actor-second
(``ACARHead.actor_context_features``). For a keyframe, the head receives the bank's window around it
(``inputs.actor_context`` [B, L2, D_ac] + mask, read like the LFB window).

Each live actor's RoI vector, projected to the latent width, is the query of ``bank_layers`` attention
blocks over the projected window rows (keys and values; scaled dot-product, padding never attended;
pre-activation LayerNorm -> ReLU -> zero-initialised output, residual; dropout 0.2 on the projections),
as in LFB's non-local operator. The classifier reads ``[actor, HR2O relation, long-range]``. The
window is input data: no gradient reaches the head that produced it.

It starts from a trained ACAR head (``head.load_acar_state_dict(acar.state_dict())``): every ACAR
weight is copied, including the classifier's ``[actor, relation]`` columns; its long-range columns keep
their fresh random values. (Zeroed, they would make the fresh head equal the ACAR head exactly, but then
no class's error reaches the attention blocks until those columns happen to grow: on the benchmark one
seed in three never learnt to use the window.)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from stad_core.heads.acar import ACARHead
from stad_core.heads.inputs import HeadInputs
from stad_core.heads.lfb import NonLocalBlock, attend_window


class ACFBHead(ACARHead):
    uses_actor_context: ClassVar[bool] = True

    def __init__(
        self,
        actor_dim: int,
        context_dim: int,
        actor_context_dim: int,
        num_classes: int,
        *,
        reduced_dim: int = 1024,
        latent_dim: int = 512,
        depth: int = 1,
        norm_groups: int = 32,
        hr2o_dropout: float = 0.2,
        dropout: float = 0.5,
        actor_location: bool = True,
        bank_layers: int = 2,
        bank_dropout: float = 0.2,
        input_norm: bool = False,
    ) -> None:
        super().__init__(
            actor_dim,
            context_dim,
            num_classes,
            reduced_dim=reduced_dim,
            latent_dim=latent_dim,
            depth=depth,
            norm_groups=norm_groups,
            hr2o_dropout=hr2o_dropout,
            dropout=dropout,
            actor_location=actor_location,
            input_norm=input_norm,
        )
        self.query_proj = nn.Linear(actor_dim, latent_dim)
        self.bank_proj = nn.Linear(actor_context_dim, latent_dim)
        self.input_dropout = nn.Dropout(bank_dropout)
        self.bank_blocks = nn.ModuleList(NonLocalBlock(latent_dim, bank_dropout) for _ in range(bank_layers))
        self.classifier = nn.Linear(actor_dim + 2 * latent_dim, num_classes)  # [actor, relation, long-range]

    def long_range_features(self, inputs: HeadInputs) -> Tensor:
        """Each actor's query after attending over its clip's bank window: [N, E]."""
        if inputs.actor_context is None or inputs.actor_context_mask is None:
            raise ValueError("ACFBHead needs inputs.actor_context [B, L2, D_ac] and actor_context_mask [B, L2]")
        query = self.input_dropout(self.query_proj(inputs.actor_features))  # [N, E]
        bank = self.input_dropout(self.bank_proj(inputs.actor_context))  # [B, L2, E]
        return attend_window(self.bank_blocks, query, bank, inputs.actor_context_mask, inputs.clip_index,
                             inputs.num_clips)  # [N, E]

    def forward(self, inputs: HeadInputs) -> Tensor:
        if self.input_norm is not None:
            inputs = self.input_norm(inputs)  # fixed standardisation of the rows (input_norm)
        first_order = self.first_order_maps(inputs)  # [N, E, h', w']
        relation = self.relation_features(first_order, inputs)  # [N, E]
        x = torch.cat([inputs.actor_features, relation, self.long_range_features(inputs)], dim=1)  # [N, D + 2E]
        return self.classifier(self.dropout(x))  # [N, K]

    def load_acar_state_dict(self, state: dict[str, Tensor]) -> list[str]:
        """Initialise from a trained ACAR head; returns the names left at their fresh values.

        The classifier takes ACAR's weights for its ``[actor, relation]`` columns; the long-range
        columns stay as initialised."""
        unexpected = sorted(set(state) - set(self.state_dict()))
        if unexpected:  # checked first, so a wrong dict changes nothing
            raise ValueError(f"not an ACAR state dict for this shape: unexpected {unexpected}")
        state = dict(state)
        weight = state.pop("classifier.weight", None)
        if weight is not None:
            n_old = weight.shape[1]
            if n_old != self.classifier.in_features - self.latent_dim:
                raise ValueError(f"not an ACAR state dict for this shape: classifier takes {n_old} inputs, "
                                 f"expected {self.classifier.in_features - self.latent_dim}")
            with torch.no_grad():  # the long-range columns keep their fresh (random) values
                self.classifier.weight[:, :n_old] = weight
        result = self.load_state_dict(state, strict=False)
        return [k for k in result.missing_keys if k != "classifier.weight"]
