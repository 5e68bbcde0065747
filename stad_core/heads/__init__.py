"""Relation heads over cached feature banks: linear, ACRN, LFB (avg/max/non-local), ACAR, ACFB.

Every head maps one ``HeadInputs`` batch to logits [N, num_classes]. ``HEADS`` names them; the
class attributes ``uses_context`` / ``uses_long_term`` / ``uses_actor_context`` tell a data loader
which bank reads a head needs. ``build_head(HeadArchitecture(...))`` builds one (a ``TrainConfig``
is a ``HeadArchitecture``); ``stad_core.heads.variants`` names the variants (``lfb_max``, ...).
"""

from __future__ import annotations

from stad_core.heads.acar import ACARHead, HR2OLayer
from stad_core.heads.acfb import ACFBHead
from stad_core.heads.acrn import ACRNHead
from stad_core.heads.architecture import (
    ACAR_ARCHITECTURE,
    HEADS,
    HeadArchitecture,
    HeadName,
    acar_architecture,
    build_head,
)
from stad_core.heads.inputs import HeadInputs, actor_slots, box_masks, masked_softmax, pad_by_clip
from stad_core.heads.lfb import FBOName, LFBHead, NonLocalBlock
from stad_core.heads.linear import LinearHead
from stad_core.heads.variants import HEAD_VARIANTS, HeadVariant, variant_fields, variant_name

__all__ = [
    "ACAR_ARCHITECTURE",
    "ACARHead",
    "ACFBHead",
    "ACRNHead",
    "FBOName",
    "HEADS",
    "HEAD_VARIANTS",
    "HR2OLayer",
    "HeadArchitecture",
    "HeadInputs",
    "HeadName",
    "HeadVariant",
    "LFBHead",
    "LinearHead",
    "NonLocalBlock",
    "acar_architecture",
    "actor_slots",
    "box_masks",
    "build_head",
    "masked_softmax",
    "pad_by_clip",
    "variant_fields",
    "variant_name",
]
