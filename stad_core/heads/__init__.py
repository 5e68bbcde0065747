"""Relation heads over cached feature banks: linear, ACRN, LFB (avg/max/non-local), ACAR, ACFB.

Every head maps one ``HeadInputs`` batch to logits [N, num_classes]. ``HEADS`` names them; the
class attributes ``uses_context`` / ``uses_long_term`` / ``uses_actor_context`` tell a data loader
which bank reads a head needs. ``build_head`` builds one from explicit dimensions.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from stad_core.errors import ConfigError
from stad_core.heads.acar import ACARHead, HR2OLayer
from stad_core.heads.acfb import ACFBHead
from stad_core.heads.acrn import ACRNHead
from stad_core.heads.inputs import HeadInputs, actor_slots, box_masks, masked_softmax, pad_by_clip
from stad_core.heads.lfb import FBOName, LFBHead, NonLocalBlock
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


def _need(name: str, field: str, value: int | None) -> int:
    if value is None:
        raise ConfigError(f"head {name!r} needs {field} (the bank's feature dimension)")
    return value


def build_head(
    name: HeadName,
    *,
    num_classes: int,
    actor_dim: int,
    context_dim: int | None = None,
    long_term_dim: int | None = None,
    actor_context_dim: int | None = None,
    mlp_hidden: int | None = None,
    fbo: FBOName = "nl",
    latent_dim: int = 512,
    reduced_dim: int = 1024,
    relation_dim: int = 512,
    num_layers: int = 2,
    depth: int = 1,
    norm_groups: int = 32,
    actor_location: bool = True,
) -> nn.Module:
    """Build the head ``name``; arguments a head does not use are ignored, missing dims are errors."""
    if name == "linear":
        return LinearHead(actor_dim, num_classes, mlp_hidden=mlp_hidden)
    if name == "acrn":
        return ACRNHead(actor_dim, _need(name, "context_dim", context_dim), num_classes, relation_dim=relation_dim,
                        actor_location=actor_location)
    if name == "lfb":
        return LFBHead(
            actor_dim,
            _need(name, "long_term_dim", long_term_dim),
            num_classes,
            operator=fbo,
            latent_dim=latent_dim,
            num_layers=num_layers,
        )
    # ACFB is ACAR plus the bank path: the same architecture fields, so it can start from an ACAR head
    acar_arch = dict(reduced_dim=reduced_dim, latent_dim=latent_dim, depth=depth, norm_groups=norm_groups,
                     actor_location=actor_location)
    if name == "acar":
        return ACARHead(actor_dim, _need(name, "context_dim", context_dim), num_classes, **acar_arch)
    if name == "acfb":
        return ACFBHead(actor_dim, _need(name, "context_dim", context_dim),
                        _need(name, "actor_context_dim", actor_context_dim), num_classes, **acar_arch)
    raise ConfigError(f"unknown head {name!r}; expected one of {', '.join(HEADS)}")


__all__ = [
    "ACARHead",
    "ACFBHead",
    "ACRNHead",
    "FBOName",
    "HEADS",
    "HR2OLayer",
    "HeadInputs",
    "HeadName",
    "LFBHead",
    "LinearHead",
    "NonLocalBlock",
    "actor_slots",
    "box_masks",
    "build_head",
    "masked_softmax",
    "pad_by_clip",
]
