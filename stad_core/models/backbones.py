"""Backbones by name: a plain dict of builders plus a ``Literal`` of the names.

Every builder returns a :class:`~stad_core.models.base.VideoBackbone`: clip ``[B, 3, T, H, W]``
-> :class:`~stad_core.models.base.BackboneOutput` (per-pathway maps at stride 16). Knobs are plain
keyword arguments (``width``, ``blocks``, ``alpha``, ``family`` ...), so a tiny variant is
``build_backbone("slowfast_r50", width=8, blocks=(1, 1, 1, 1))``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

from stad_core.errors import ConfigError
from stad_core.models.base import VideoBackbone
from stad_core.models.resnet3d import SlowFastResNet, mmaction2_spec, pyslowfast_spec
from stad_core.models.tv_video import TorchvisionVideoBackbone

BackboneName = Literal[
    "slowfast_r50", "slowfast_r101", "slowonly_r50", "slowonly_r101",
    "r3d_18", "mc3_18", "r2plus1d_18", "mvit_v2_s", "swin3d_t", "s3d",
]
CheckpointFamily = Literal["pyslowfast", "mmaction2"]


def _resnet(depth: int, fast: bool) -> Callable[..., VideoBackbone]:
    def build(family: CheckpointFamily = "pyslowfast", **knobs: Any) -> VideoBackbone:
        """``family`` picks the architecture conventions of that checkpoint family; other knobs
        are :class:`~stad_core.models.resnet3d.SlowFastSpec` fields."""
        make = {"pyslowfast": pyslowfast_spec, "mmaction2": mmaction2_spec}.get(family)
        if make is None:
            raise ConfigError(f"family must be 'pyslowfast' or 'mmaction2', got {family!r}")
        return SlowFastResNet(make(depth=depth, fast=fast, **knobs))

    return build


def _torchvision(name: str) -> Callable[..., VideoBackbone]:
    def build(weights_path: str | Path | None = None, **knobs: Any) -> VideoBackbone:
        return TorchvisionVideoBackbone(name, weights_path=weights_path, **knobs)  # type: ignore[arg-type]

    return build


BACKBONES: dict[str, Callable[..., VideoBackbone]] = {
    "slowfast_r50": _resnet(50, True),
    "slowfast_r101": _resnet(101, True),
    "slowonly_r50": _resnet(50, False),
    "slowonly_r101": _resnet(101, False),
    **{n: _torchvision(n) for n in ("r3d_18", "mc3_18", "r2plus1d_18", "mvit_v2_s", "swin3d_t", "s3d")},
}
assert set(BACKBONES) == set(get_args(BackboneName))


def build_backbone(name: BackboneName | str, **knobs: Any) -> VideoBackbone:
    """Build a backbone by name with random initialisation (load weights separately)."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    try:
        return BACKBONES[name](**knobs)
    except TypeError as exc:  # an unknown knob
        raise ConfigError(f"backbone {name!r}: {exc}") from None
