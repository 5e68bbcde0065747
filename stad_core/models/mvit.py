"""MViT v2-S / v2-B (Li et al., CVPR 2022) built on torchvision's implementation, importing the
PySlowFast and MMAction2 checkpoints.

Architecture: ``3 x 7 x 7`` patch conv, stride (2, 4, 4), 96 channels, a class token; pooling-attention
blocks (depth-wise ``3 x 3 x 3`` conv + LayerNorm pooling of q, k and v), decomposed relative position
tables ``rel_pos_h/w/t`` added to the attention logits, residual pooling, channels and heads doubled
inside the attention of each stage's first block; q pooled ``1 x 2 x 2`` there, k/v pooled adaptively
from ``1 x 8 x 8`` in stage 1 to ``1 x 1 x 1`` in stage 4. S: 16 blocks, stages start at blocks
1, 3, 14; B: 24 blocks, at 2, 5, 21. torchvision's ``MViT`` follows PySlowFast's maths, so only the
names differ. The table sizes are ``2 * max(q, kv) - 1`` per axis at the trained size (224 px,
``temporal_size`` frames), interpolated at run time for other sizes.

Output: the final tokens (LayerNorm, class token dropped) ``[B, 768, T/2, H/32, W/32]``, resized
2x (trilinear) to ``[B, 768, T/2, ceil(H/16), ceil(W/16)]``. Removing stage 4's q pooling instead
would change its relative position tables' sizes, so published weights could not be used as they are.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torchvision.models.video import mvit

from stad_core.models.base import BackboneOutput, Normalization, VideoBackbone

MVIT_SIZES: dict[str, dict[str, object]] = {
    "mvit_v2_s_16x4": {"depth": 16, "stages": (1, 3, 14), "temporal_size": 16},
    "mvit_v2_b": {"depth": 24, "stages": (2, 5, 21), "temporal_size": 32},
}


def block_settings(width: int, depth: int, stages: tuple[int, ...]) -> list[mvit.MSBlockConfig]:
    """Per-block heads, channels and pooling strides (a stage's first block already has the next
    stage's heads, output channels and k/v stride)."""
    out = []
    for i in range(depth):
        s = sum(1 for d in stages if d <= i)
        s_in = sum(1 for d in stages if d <= i - 1) if i else 0
        kv = max(1, 8 // 2**s)
        out.append(mvit.MSBlockConfig(
            num_heads=2**s, input_channels=width * 2**s_in, output_channels=width * 2**s,
            kernel_q=[3, 3, 3], kernel_kv=[3, 3, 3], stride_q=[1, 2, 2] if i in stages else [1, 1, 1],
            stride_kv=[1, kv, kv]))
    return out


class MViTv2(VideoBackbone):
    """MViT v2 returning one map ``[B, 8 * width, T/2, ceil(H/16), ceil(W/16)]`` (768 published); ``T`` even."""

    def __init__(self, width: int = 96, depth: int = 24, stages: tuple[int, ...] = (2, 5, 21),
                 temporal_size: int = 32, spatial_size: int = 224, drop_path_rate: float = 0.0,
                 normalization: Normalization | None = None) -> None:
        if len(stages) != 3:
            raise ValueError(f"stages must give the first block of stages 2-4, got {stages}")
        super().__init__(pathway_channels=(8 * width,), normalization=normalization or Normalization.kinetics())
        self.model = mvit.MViT(
            spatial_size=(spatial_size, spatial_size), temporal_size=temporal_size,
            block_setting=block_settings(width, depth, tuple(stages)), residual_pool=True,
            residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True,
            stochastic_depth_prob=drop_path_rate)
        del self.model.head  # the classifier is never used

    def forward_features(self, x: Tensor) -> BackboneOutput:
        m = self.model
        y = m.conv_proj(x)
        thw = tuple(y.shape[2:])
        y = m.pos_encoding(y.flatten(2).transpose(1, 2))
        for block in m.blocks:
            y, thw = block(y, thw)
        y = m.norm(y)[:, 1:]
        b, _, c = y.shape
        y = y.transpose(1, 2).reshape(b, c, *thw)
        h16, w16 = -(-x.shape[3] // 16), -(-x.shape[4] // 16)
        return BackboneOutput([F.interpolate(y, size=(y.shape[2], h16, w16), mode="trilinear", align_corners=False)])


def build_mvit(name: str, width: int | None = None, **knobs: object) -> MViTv2:
    """The published size of ``name``; ``width=w`` builds a 4-block variant (CPU tests and demos)."""
    size = dict(MVIT_SIZES[name])
    if width is not None:
        size = {"depth": 4, "stages": (1, 2, 3), "temporal_size": size["temporal_size"], "width": width}
    return MViTv2(**{**size, **knobs})  # type: ignore[arg-type]


# --- checkpoint names -------------------------------------------------------------------------

_PARTS = (  # ours (after "model.") -> PySlowFast / MMAction2 (before the "backbone." prefix)
    (".attn.project.0.", ".attn.proj."), (".attn.pool_q.pool.", ".attn.pool_q."),
    (".attn.pool_k.pool.", ".attn.pool_k."), (".attn.pool_v.pool.", ".attn.pool_v."),
    (".attn.pool_q.norm_act.0.", ".attn.norm_q."), (".attn.pool_k.norm_act.0.", ".attn.norm_k."),
    (".attn.pool_v.norm_act.0.", ".attn.norm_v."), (".mlp.0.", ".mlp.fc1."), (".mlp.3.", ".mlp.fc2."),
    (".project.", ".proj."),
)


def mvit_source_key(key: str, family: str) -> str:
    """Our name (``model.`` + torchvision's) -> PySlowFast (``patch_embed.proj``, ``cls_token``, ``norm``)
    or MMAction2 (``backbone.patch_embed.projection``, ``backbone.cls_token``, ``backbone.norm3``)."""
    if family not in ("pyslowfast", "mmaction2"):
        return key
    k = key.removeprefix("model.")
    mma = family == "mmaction2"
    if k.startswith("conv_proj."):
        k = k.replace("conv_proj.", "patch_embed.projection." if mma else "patch_embed.proj.")
    elif k == "pos_encoding.class_token":
        k = "cls_token"
    elif k.startswith("norm."):
        k = k.replace("norm.", "norm3." if mma else "norm.")
    else:
        for ours, theirs in _PARTS:
            if ours in k:
                k = k.replace(ours, theirs)
                break
    return ("backbone." if mma else "") + k


def mvit_family(keys: set[str]) -> str | None:
    if "backbone.patch_embed.projection.weight" in keys and "backbone.blocks.0.attn.rel_pos_h" in keys:
        return "mmaction2"
    if "patch_embed.proj.weight" in keys and "blocks.0.attn.rel_pos_h" in keys:
        return "pyslowfast"
    return None


def mvit_convert(key: str, value: Tensor) -> Tensor:
    """Source tensor -> our shape: the class token is ``[1, 1, C]`` in the releases, ``[C]`` in torchvision."""
    return value.reshape(-1) if key.endswith("pos_encoding.class_token") else value


MVIT_HEAD_PREFIXES = ("head.", "cls_head.", "roi_head.")
