"""What every registered backbone is: its clip sampling, map shapes, size, cost and checkpoint families.

:func:`describe_backbone` builds the published-size model on the ``meta`` device (no memory, no
compute) and counts its parameters and the FLOPs of one forward with
:class:`torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add; papers often quote
multiply-adds, i.e. half) at a fixed clip: the backbone's own frame count and 256 x 256 pixels (the
AVA short side), so rows compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from stad_core.models.backbones import BACKBONES, build_backbone


@dataclass(frozen=True)
class BackboneCard:
    """Static facts about one backbone name."""

    sampling: tuple[int, int]  # (frames, frame step) of its usual AVA/Kinetics recipe
    families: tuple[str, ...]  # checkpoint layouts it imports


_RESNET = ("pyslowfast", "mmaction2")
CARDS: dict[str, BackboneCard] = {
    "slowfast_r50": BackboneCard((32, 2), _RESNET),
    "slowfast_r101": BackboneCard((32, 2), _RESNET),
    "slowonly_r50": BackboneCard((8, 8), _RESNET),
    "slowonly_r101": BackboneCard((8, 8), _RESNET),
    "slowonly_r50_nl": BackboneCard((8, 8), ("mmaction2",)),
    "r3d_18": BackboneCard((16, 2), ("torchvision",)),
    "mc3_18": BackboneCard((16, 2), ("torchvision",)),
    "r2plus1d_18": BackboneCard((16, 2), ("torchvision",)),
    "mvit_v2_s": BackboneCard((16, 4), ("torchvision",)),
    "swin3d_t": BackboneCard((32, 2), ("torchvision",)),
    "s3d": BackboneCard((32, 2), ("torchvision",)),
    "vit_b_videomae": BackboneCard((16, 4), ("mmaction2", "videomae", "videomae_pretrain")),
    "vit_l_videomae": BackboneCard((16, 4), ("mmaction2", "videomae", "videomae_pretrain")),
    "x3d_s": BackboneCard((13, 6), _RESNET),
    "x3d_m": BackboneCard((16, 5), _RESNET),
    "x3d_l": BackboneCard((16, 5), _RESNET),
    "mvit_v2_b": BackboneCard((32, 3), _RESNET),
    "mvit_v2_s_16x4": BackboneCard((16, 4), _RESNET),
}
assert set(CARDS) == set(BACKBONES)

CLIP_SIZE = 256


@dataclass(frozen=True)
class BackboneDescription:
    name: str
    frames: int
    step: int
    map_shapes: tuple[tuple[int, ...], ...]  # per pathway, for one clip of ``frames`` x 256 x 256
    channels: int
    params_m: float
    gflops: float
    families: tuple[str, ...]


def describe_backbone(name: str, size: int = CLIP_SIZE) -> BackboneDescription:
    """Parameters (millions) and GFLOPs of one ``[1, 3, frames, size, size]`` clip, counted on ``meta``."""
    card = CARDS[name]
    frames = card.sampling[0]
    with torch.device("meta"):
        model = build_backbone(name).eval()
        x = torch.zeros(1, 3, frames, size, size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = model.forward_features(x)
    params = sum(p.numel() for p in model.parameters())
    return BackboneDescription(name, frames, card.sampling[1], tuple(tuple(m.shape[1:]) for m in out.maps),
                               model.out_channels, params / 1e6, counter.get_total_flops() / 1e9, card.families)
