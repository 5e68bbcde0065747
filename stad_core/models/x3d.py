"""X3D-S/M/L (Feichtenhofer, CVPR 2020) with the stride-16 (AVA/detection) res5, from the paper's spec.

Stem: ``1 x 3 x 3`` conv stride (1, 2, 2) then a channel-wise ``5 x 1 x 1`` conv + BN + ReLU (no
max-pool). Four stages of bottlenecks ``1x1x1 -> channel-wise 3x3x3 (spatial stride) -> 1x1x1``,
inner width ``int(2.25 * out)``, squeeze-excite (ratio 1/16, width rounded to a multiple of 8, at
least 8) on blocks 0, 2, 4 ... of every stage, applied after the channel-wise conv's BN and before
its swish; the residual sum goes through a ReLU. Stage widths 24, 48, 96, 192 (``width * 2**i``),
blocks ``ceil(depth_factor * (1, 2, 5, 3))``: S and M 2.2 -> (3, 5, 11, 7), L 5.0 -> (5, 10, 25, 15).
Then ``conv5``: 1x1x1 conv to ``int(2.25 * 192) = 432`` channels + BN + ReLU (PySlowFast keeps it
in its head as ``head.conv_5``, MMAction2 in its backbone). S and M share weights' shapes; they
differ in sampling (S: 13 frames x 6 at 182 px; M: 16 x 5 at 256; L: 16 x 5 at 356).

Every stage has spatial stride 2 in the classification model (stride 32); the detection variant
sets res5's to 1 (``res5_stride=1``, default) -> stride-16 maps; ``res5_dilation`` optionally
dilates its 3x3x3 convs.

Input ``[B, 3, T, H, W]``; output ``[B, 432, T, ceil(H/16), ceil(W/16)]`` (no temporal stride).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from stad_core.models.base import BackboneOutput, Normalization, VideoBackbone

X3D_DEPTH_FACTOR = {"x3d_s": 2.2, "x3d_m": 2.2, "x3d_l": 5.0}
BASE_BLOCKS = (1, 2, 5, 3)
BOTTLENECK_FACTOR = 2.25


def se_width(channels: int, ratio: float = 1 / 16, divisor: int = 8) -> int:
    """Squeeze-excite bottleneck width: ``channels * ratio`` rounded to a multiple of 8 (>= 8),
    bumped up one step when rounding lost more than 10%."""
    width = channels * ratio
    out = max(divisor, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = se_width(channels)
        self.fc1 = nn.Conv3d(channels, inner, 1)
        self.fc2 = nn.Conv3d(inner, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class X3DBlock(nn.Module):
    """``1x1x1`` + BN + ReLU -> channel-wise ``3x3x3`` + BN (+ SE) + swish -> ``1x1x1`` + BN; residual + ReLU."""

    def __init__(self, c_in: int, inner: int, c_out: int, stride: int, dilation: int, se: bool) -> None:
        super().__init__()
        self.conv_a = nn.Conv3d(c_in, inner, 1, bias=False)
        self.bn_a = nn.BatchNorm3d(inner)
        self.conv_b = nn.Conv3d(inner, inner, 3, stride=(1, stride, stride), padding=(1, dilation, dilation),
                                dilation=(1, dilation, dilation), groups=inner, bias=False)
        self.bn_b = nn.BatchNorm3d(inner)
        self.se = SqueezeExcite(inner) if se else None
        self.conv_c = nn.Conv3d(inner, c_out, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(c_out)
        self.shortcut = _ConvBN(c_in, c_out, stride) if (stride != 1 or c_in != c_out) else None

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn_a(self.conv_a(x)))
        y = self.bn_b(self.conv_b(y))
        if self.se is not None:
            y = self.se(y)
        y = self.bn_c(self.conv_c(y * torch.sigmoid(y)))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class _ConvBN(nn.Module):
    """``1x1x1`` conv (spatial stride) + BN: the projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, 1, stride=(1, stride, stride), bias=False)
        self.bn = nn.BatchNorm3d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class X3DStem(nn.Module):
    def __init__(self, c_out: int, temporal_kernel: int = 5) -> None:
        super().__init__()
        self.conv_xy = nn.Conv3d(3, c_out, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
        self.conv_t = nn.Conv3d(c_out, c_out, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0),
                                groups=c_out, bias=False)
        self.bn = nn.BatchNorm3d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv_t(self.conv_xy(x))))


class Conv5(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm3d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x)))


class X3D(VideoBackbone):
    """X3D returning one map ``[B, int(2.25 * 8 * width), T, ceil(H/16), ceil(W/16)]`` (432 for S/M/L)."""

    def __init__(
        self,
        width: int = 24,
        blocks: tuple[int, int, int, int] = (3, 5, 11, 7),
        res5_stride: int = 1,
        res5_dilation: int = 1,
        normalization: Normalization | None = None,
    ) -> None:
        out5 = int(BOTTLENECK_FACTOR * width * 8)
        super().__init__(pathway_channels=(out5,), normalization=normalization or Normalization.kinetics())
        self.blocks_per_stage = tuple(blocks)
        self.stem = X3DStem(width)
        c_in = width
        strides = (2, 2, 2, res5_stride)
        for i, n in enumerate(blocks):
            c_out = width * 2**i
            inner = int(BOTTLENECK_FACTOR * c_out)
            dilation = res5_dilation if i == 3 else 1
            stage = [X3DBlock(c_in if b == 0 else c_out, inner, c_out, strides[i] if b == 0 else 1, dilation,
                              se=b % 2 == 0) for b in range(n)]
            self.add_module(f"res{i + 2}", nn.Sequential(*stage))
            c_in = c_out
        self.conv5 = Conv5(c_in, out5)

    def forward_features(self, x: Tensor) -> BackboneOutput:
        x = self.stem(x)
        for i in range(4):
            x = getattr(self, f"res{i + 2}")(x)
        return BackboneOutput([self.conv5(x)])


def build_x3d(name: str, width: int = 24, blocks: tuple[int, int, int, int] | None = None,
              **knobs: object) -> X3D:
    """X3D-S/M/L by name; ``width`` (stem/res2 channels, 24 published) and ``blocks`` make tiny ones."""
    if blocks is None:
        blocks = tuple(math.ceil(X3D_DEPTH_FACTOR[name] * b) for b in BASE_BLOCKS)  # type: ignore[assignment]
    return X3D(width=width, blocks=blocks, **knobs)  # type: ignore[arg-type]


# --- checkpoint names -------------------------------------------------------------------------

_PSF_PART = {"conv_a": "branch2.a", "bn_a": "branch2.a_bn", "conv_b": "branch2.b", "bn_b": "branch2.b_bn",
             "se.fc1": "branch2.se.fc1", "se.fc2": "branch2.se.fc2", "conv_c": "branch2.c", "bn_c": "branch2.c_bn",
             "shortcut.conv": "branch1", "shortcut.bn": "branch1_bn"}
_MMA_PART = {"conv_a": "conv1.conv", "bn_a": "conv1.bn", "conv_b": "conv2.conv", "bn_b": "conv2.bn",
             "se.fc1": "se_module.fc1", "se.fc2": "se_module.fc2", "conv_c": "conv3.conv", "bn_c": "conv3.bn",
             "shortcut.conv": "downsample.conv", "shortcut.bn": "downsample.bn"}
_PSF_FIXED = {"stem.conv_xy": "s1.pathway0_stem.conv_xy", "stem.conv_t": "s1.pathway0_stem.conv",
              "stem.bn": "s1.pathway0_stem.bn", "conv5.conv": "head.conv_5", "conv5.bn": "head.conv_5_bn"}
_MMA_FIXED = {"stem.conv_xy": "backbone.conv1_s.conv", "stem.conv_t": "backbone.conv1_t.conv",
              "stem.bn": "backbone.conv1_t.bn", "conv5.conv": "backbone.conv5.conv", "conv5.bn": "backbone.conv5.bn"}


def x3d_source_key(key: str, family: str) -> str:
    """Our name -> the PySlowFast (``s2.pathway0_res0.branch2.a``, ``head.conv_5``) or MMAction2
    (``backbone.layer1.0.conv1.conv``, ``backbone.conv5.conv``) name."""
    if family not in ("pyslowfast", "mmaction2"):
        return key
    module, _, leaf = key.rpartition(".")
    fixed = _PSF_FIXED if family == "pyslowfast" else _MMA_FIXED
    if module in fixed:
        return f"{fixed[module]}.{leaf}"
    stage, block, part = module.split(".", 2)  # res2.0.conv_a
    s = int(stage[3:])
    if family == "pyslowfast":
        return f"s{s}.pathway0_res{block}.{_PSF_PART[part]}.{leaf}"
    return f"backbone.layer{s - 1}.{block}.{_MMA_PART[part]}.{leaf}"


def x3d_family(keys: set[str]) -> str | None:
    """Which X3D layout the keys are in (None: not an X3D checkpoint)."""
    if "s1.pathway0_stem.conv_xy.weight" in keys:
        return "pyslowfast"
    if "backbone.conv1_s.conv.weight" in keys:
        return "mmaction2"
    return None


#: PySlowFast's head beyond conv_5 (``lin_5``, ``projection``) and MMAction2's ``cls_head``
X3D_HEAD_PREFIXES = ("head.lin_5", "head.projection", "cls_head.", "roi_head.")
