"""Which head, with which dimensions: ``HeadArchitecture`` and ``build_head``.

``HeadArchitecture`` declares every setting that shapes a head, once; ``TrainConfig`` extends it,
so a training config *is* an architecture and ``build_head(config)`` needs no field copying.
A head ignores the settings it does not use; a bank dimension it needs but lacks is an error.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from stad_core.errors import ConfigError
from stad_core.heads.acar import ACARHead
from stad_core.heads.acfb import ACFBHead
from stad_core.heads.acrn import ACRNHead
from stad_core.heads.lfb import FBOName, LFBHead
from stad_core.heads.linear import LinearHead

HeadName = Literal["linear", "acrn", "lfb", "acar", "acfb"]

HEADS: dict[HeadName, type[nn.Module]] = {
    "linear": LinearHead,
    "acrn": ACRNHead,
    "lfb": LFBHead,
    "acar": ACARHead,
    "acfb": ACFBHead,
}
assert set(HEADS) == set(get_args(HeadName))

#: The settings that shape the ACAR part of ACAR and ACFB heads: an ACFB head that starts from a
#: trained ACAR head's weights must take these from that head's config.
ACAR_ARCHITECTURE: tuple[str, ...] = ("latent_dim", "reduced_dim", "depth", "norm_groups", "actor_location",
                                      "input_norm")


class HeadArchitecture(BaseModel):
    """A head's name and dimensions (bank feature dims must match the banks; checked at training start)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    head: HeadName = "linear"
    num_classes: int = Field(80, gt=0)
    actor_dim: int = Field(2304, gt=0)
    context_dim: int | None = None
    long_term_dim: int | None = None
    actor_context_dim: int | None = None
    mlp_hidden: int | None = None
    fbo: FBOName = "nl"
    latent_dim: int = 512
    reduced_dim: int = 1024
    relation_dim: int = 512
    num_layers: int = 2
    depth: int = 1
    norm_groups: int = 32
    actor_location: bool = True  # ACRN/ACAR/ACFB: add a map of the actor's box to the tiled actor-context maps
    # standardise actor (and long-term) rows with the training rows' per-column mean/std (heads/input_norm.py)
    input_norm: bool = False
    dropout: float | None = None  # the classifier's input dropout; None: each head's papers' value (0.5, LFB 0.3)


def acar_architecture(arch: HeadArchitecture) -> dict[str, Any]:
    """``arch``'s ``ACAR_ARCHITECTURE`` settings, as keyword arguments of ``ACARHead`` / ``ACFBHead``."""
    return {name: getattr(arch, name) for name in ACAR_ARCHITECTURE}


def _need(arch: HeadArchitecture, field: str) -> int:
    value = getattr(arch, field)
    if value is None:
        raise ConfigError(f"head {arch.head!r} needs {field} (the bank's feature dimension)")
    return value


def build_head(arch: HeadArchitecture) -> nn.Module:
    """The (freshly initialised) head ``arch.head`` with ``arch``'s dimensions."""
    name = arch.head
    common: dict[str, Any] = {} if arch.dropout is None else {"dropout": arch.dropout}
    if name in ("linear", "acrn", "lfb"):  # ACAR/ACFB take it with their ACAR_ARCHITECTURE settings
        common["input_norm"] = arch.input_norm
    if name == "linear":
        return LinearHead(arch.actor_dim, arch.num_classes, mlp_hidden=arch.mlp_hidden, **common)
    if name == "acrn":
        return ACRNHead(arch.actor_dim, _need(arch, "context_dim"), arch.num_classes, relation_dim=arch.relation_dim,
                        actor_location=arch.actor_location, **common)
    if name == "lfb":
        return LFBHead(arch.actor_dim, _need(arch, "long_term_dim"), arch.num_classes, operator=arch.fbo,
                       latent_dim=arch.latent_dim, num_layers=arch.num_layers, **common)
    if name == "acar":
        return ACARHead(arch.actor_dim, _need(arch, "context_dim"), arch.num_classes, **acar_architecture(arch), **common)
    if name == "acfb":  # ACAR plus the bank path, so it can start from a trained ACAR head
        return ACFBHead(arch.actor_dim, _need(arch, "context_dim"), _need(arch, "actor_context_dim"), arch.num_classes,
                        **acar_architecture(arch), **common)
    raise ConfigError(f"unknown head {name!r}; expected one of {', '.join(HEADS)}")
