"""Video backbones (clip -> stride-16 maps), checkpoint import, actor features and context maps."""

from __future__ import annotations

from stad_core.models.actor_features import (
    GEOMETRY_DIM,
    ActorFeatureExtractor,
    box_geometry,
    boxes_to_rois,
    context_maps,
    roi_actor_features,
)
from stad_core.models.backbones import BACKBONES, BackboneName, CheckpointFamily, build_backbone
from stad_core.models.base import STRIDE, BackboneOutput, Normalization, VideoBackbone, frames_to_clip
from stad_core.models.checkpoints import (
    CheckpointMismatchError,
    LoadReport,
    describe_checkpoint,
    detect_family,
    head_weights,
    load_backbone_checkpoint,
    mmaction2_key,
    pyslowfast_key,
    read_checkpoint,
)
from stad_core.models.mvit import MViTv2
from stad_core.models.nonlocal_block import NonLocalEmbedGauss
from stad_core.models.resnet3d import SlowFastResNet, SlowFastSpec, mmaction2_spec, pyslowfast_spec
from stad_core.models.tv_video import TorchvisionVideoBackbone
from stad_core.models.videomae import VideoMAEViT
from stad_core.models.x3d import X3D

__all__ = [
    "BACKBONES",
    "STRIDE",
    "ActorFeatureExtractor",
    "BackboneName",
    "X3D",
    "BackboneOutput",
    "CheckpointFamily",
    "CheckpointMismatchError",
    "LoadReport",
    "MViTv2",
    "NonLocalEmbedGauss",
    "Normalization",
    "SlowFastResNet",
    "SlowFastSpec",
    "TorchvisionVideoBackbone",
    "VideoBackbone",
    "VideoMAEViT",
    "boxes_to_rois",
    "build_backbone",
    "context_maps",
    "describe_checkpoint",
    "detect_family",
    "frames_to_clip",
    "head_weights",
    "load_backbone_checkpoint",
    "mmaction2_key",
    "mmaction2_spec",
    "pyslowfast_key",
    "pyslowfast_spec",
    "read_checkpoint",
    "roi_actor_features",
    "GEOMETRY_DIM",
    "box_geometry",
]
