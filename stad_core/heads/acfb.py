"""ACFB head: ACAR whose HR2O also attends over an actor-context feature bank (Pan et al. 2021).

The bank holds, for every actor at every keyframe of a video, the first-order actor-context feature
of a *trained, frozen* ACAR head, averaged over space to one ``D_ac``-vector per actor-second
(``ACARHead.actor_context_features``). For a keyframe, the head receives the bank's window around it
(``inputs.actor_context`` [B, L2, D_ac] + mask, read like the LFB window). In each HR2O layer the
window rows are linearly projected to keys and values and appended to the keys/values of the clip's
own actors at every spatial position; the padding of the window is never attended. The window is
input data: no gradient reaches the head that produced it.

Its weights are a superset of ``ACARHead``'s (plus ``bank_key``/``bank_value`` per layer), so it can
start from the trained ACAR head: ``head.load_acar_state_dict(acar.state_dict())``.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from stad_core.heads.acar import ACARHead
from stad_core.heads.inputs import HeadInputs


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
            bank_dim=actor_context_dim,
        )

    def _bank(self, inputs: HeadInputs) -> tuple[Tensor | None, Tensor | None]:
        if inputs.actor_context is None or inputs.actor_context_mask is None:
            raise ValueError("ACFBHead needs inputs.actor_context [B, L2, D_ac] and actor_context_mask [B, L2]")
        return inputs.actor_context, inputs.actor_context_mask

    def load_acar_state_dict(self, state: dict[str, Tensor]) -> list[str]:
        """Initialise from a trained ACAR head; returns the names left at their fresh values."""
        result = self.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"not an ACAR state dict for this shape: unexpected {result.unexpected_keys}")
        return list(result.missing_keys)
