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
from stad_core.models.mvit import build_mvit
from stad_core.models.videomae import build_videomae
from stad_core.models.x3d import build_x3d

BackboneName = Literal[
    "slowfast_r50", "slowfast_r101", "slowonly_r50", "slowonly_r101", "slowonly_r50_nl",
    "r3d_18", "mc3_18", "r2plus1d_18", "mvit_v2_s", "swin3d_t", "s3d",
    "vit_b_videomae", "vit_l_videomae", "x3d_s", "x3d_m", "x3d_l", "mvit_v2_b", "mvit_v2_s_16x4",
]
CheckpointFamily = Literal["pyslowfast", "mmaction2"]


def _resnet(depth: int, fast: bool, default_family: CheckpointFamily = "pyslowfast",
            **defaults: Any) -> Callable[..., VideoBackbone]:
    def build(family: CheckpointFamily = default_family, **knobs: Any) -> VideoBackbone:
        """``family`` picks the architecture conventions of that checkpoint family; other knobs
        are :class:`~stad_core.models.resnet3d.SlowFastSpec` fields."""
        make = {"pyslowfast": pyslowfast_spec, "mmaction2": mmaction2_spec}.get(family)
        if make is None:
            raise ConfigError(f"family must be 'pyslowfast' or 'mmaction2', got {family!r}")
        return SlowFastResNet(make(depth=depth, fast=fast, **{**defaults, **knobs}))

    return build


def _torchvision(name: str) -> Callable[..., VideoBackbone]:
    def build(weights_path: str | Path | None = None, **knobs: Any) -> VideoBackbone:
        return TorchvisionVideoBackbone(name, weights_path=weights_path, **knobs)  # type: ignore[arg-type]

    return build


def _with_weights(make: Callable[..., VideoBackbone], name: str) -> Callable[..., VideoBackbone]:
    def build(weights_path: str | Path | None = None, **knobs: Any) -> VideoBackbone:
        """``weights_path``: a checkpoint of a family this backbone imports (every tensor must match)."""
        model = make(name, **knobs)
        if weights_path is not None:
            from stad_core.models.checkpoints import load_backbone_checkpoint

            load_backbone_checkpoint(model, weights_path).check(weights_path)
        return model

    return build


BACKBONES: dict[str, Callable[..., VideoBackbone]] = {
    "slowfast_r50": _resnet(50, True),
    "slowfast_r101": _resnet(101, True),
    "slowonly_r50": _resnet(50, False),
    "slowonly_r101": _resnet(101, False),
    # MMAction2's SlowOnly R50 + NonLocalEmbedGauss (non_local=((0,0,0),(1,0,1,0),(1,0,1,0,1,0),(0,0,0)))
    "slowonly_r50_nl": _resnet(50, False, "mmaction2", non_local_stages=(1, 2)),
    **{n: _torchvision(n) for n in ("r3d_18", "mc3_18", "r2plus1d_18", "mvit_v2_s", "swin3d_t", "s3d")},
    **{n: _with_weights(build_videomae, n) for n in ("vit_b_videomae", "vit_l_videomae")},
    **{n: _with_weights(build_x3d, n) for n in ("x3d_s", "x3d_m", "x3d_l")},
    **{n: _with_weights(build_mvit, n) for n in ("mvit_v2_b", "mvit_v2_s_16x4")},
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
