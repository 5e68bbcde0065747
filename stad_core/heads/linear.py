"""Linear head: dropout + a linear classifier (or a 2-layer MLP) on each actor's own RoI vector.

The RoI vector is already pooled at extraction (temporal average, RoIAlign, spatial max), so this is
the "no relations" baseline every other head is compared with.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from stad_core.heads.input_norm import InputNorm
from stad_core.heads.inputs import HeadInputs


class LinearHead(nn.Module):
    uses_context: ClassVar[bool] = False
    uses_long_term: ClassVar[bool] = False
    uses_actor_context: ClassVar[bool] = False

    def __init__(
        self,
        actor_dim: int,
        num_classes: int,
        *,
        mlp_hidden: int | None = None,
        dropout: float = 0.5,
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        self.input_norm = InputNorm(actor_dim) if input_norm else None
        self.dropout = nn.Dropout(dropout)
        if mlp_hidden is None:
            self.classifier: nn.Module = nn.Linear(actor_dim, num_classes)
        else:
            self.classifier = nn.Sequential(
                nn.Linear(actor_dim, mlp_hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(mlp_hidden, num_classes),
            )

    def forward(self, inputs: HeadInputs) -> Tensor:
        if self.input_norm is not None:
            inputs = self.input_norm(inputs)  # fixed standardisation of the rows (input_norm)
        x = self.dropout(inputs.actor_features)  # [N, D]
        return self.classifier(x)  # [N, K]
