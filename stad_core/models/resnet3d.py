"""SlowFast and SlowOnly 3D ResNets (R50/R101), written from the papers' specifications.

SlowFast (Feichtenhofer et al., ICCV 2019): a Slow pathway sees every ``alpha``-th frame with
``C`` channels, a Fast pathway sees all frames with ``beta * C`` channels; after the stem and
after res2-res4 a time-strided convolution (kernel ``k x 1 x 1``, stride ``alpha``,
``fusion_ratio * beta * C`` output channels) maps Fast features into Slow, where they are
concatenated. Temporal kernels: Slow 1 (stem, res2, res3) and 3 (res4, res5); Fast 5 (stem) and 3
everywhere else. For AVA the res5 spatial stride is 1, with dilation 2 (PySlowFast) or without
dilation (MMAction2), giving stride-16 maps.

Module names are this project's own; :mod:`stad_core.models.checkpoints` maps them to the
PySlowFast and MMAction2 key layouts.

Input: ``[B, 3, T, H, W]`` clip (uint8 0-255 or float 0-1). Output (R50, ``width=64``,
``beta_inv=8``), with ``H16 = ceil(H / 16)``:

* Slow: ``[B, 2048, T / alpha, H16, W16]`` (SlowOnly: ``[B, 2048, T, H16, W16]``)
* Fast: ``[B, 256, T, H16, W16]``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from stad_core.models.base import BackboneOutput, Normalization, VideoBackbone
from stad_core.models.nonlocal_block import NonLocalEmbedGauss

STAGE_BLOCKS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
EXPANSION = 4


@dataclass(frozen=True)
class SlowFastSpec:
    """Architecture of a SlowFast / SlowOnly ResNet (all fields explicit; no global config).

    ``lateral_norm``, ``res5_dilation`` and ``slow_sampling`` are where the PySlowFast and
    MMAction2 checkpoint families differ; :func:`pyslowfast_spec` / :func:`mmaction2_spec` set them.
    """

    depth: int = 50
    width: int = 64  # slow stem channels; res2..res5 inner widths are width * (1, 2, 4, 8)
    blocks: tuple[int, int, int, int] | None = None  # None: the depth's standard counts
    fast: bool = True  # False: SlowOnly
    alpha: int = 4  # frame-rate ratio Fast/Slow (8x8 recipe: 4; 4x16 recipe: 8)
    beta_inv: int = 8  # channel ratio Slow/Fast
    fusion_ratio: int = 2  # lateral output channels = fusion_ratio * fast channels
    fusion_kernel: int = 7  # temporal kernel of the lateral conv
    lateral_norm: bool = True  # PySlowFast: conv+BN+ReLU; MMAction2: conv only
    res5_dilation: int = 2  # PySlowFast AVA: 2; MMAction2 AVA: 1
    slow_sampling: Literal["linspace", "stride"] = "linspace"  # PySlowFast: linspace; MMAction2: stride
    slow_temporal_kernels: tuple[int, int, int, int, int] = (1, 1, 1, 3, 3)  # stem, res2..res5
    fast_temporal_kernels: tuple[int, int, int, int, int] = (5, 3, 3, 3, 3)
    normalization: Normalization = field(default_factory=Normalization.kinetics)
    #: stages (0..3 = res2..res5) whose even-numbered blocks end with a non-local block
    #: (MMAction2's SlowOnly-NL: res3 and res4 -> (1, 2))
    non_local_stages: tuple[int, ...] = ()

    def stage_blocks(self) -> tuple[int, int, int, int]:
        if self.blocks is not None:
            return self.blocks
        if self.depth not in STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {self.depth}")
        return STAGE_BLOCKS[self.depth]

    @property
    def fast_width(self) -> int:
        return self.width // self.beta_inv


def pyslowfast_spec(**overrides: object) -> SlowFastSpec:
    """PySlowFast AVA conventions: lateral BN+ReLU, dilated res5, linspace slow frames, 0.45/0.225."""
    base: dict[str, object] = dict(lateral_norm=True, res5_dilation=2, slow_sampling="linspace",
                                   normalization=Normalization.kinetics())
    base.update(overrides)
    return SlowFastSpec(**base)  # type: ignore[arg-type]


def mmaction2_spec(**overrides: object) -> SlowFastSpec:
    """MMAction2 AVA conventions: conv-only lateral, undilated res5, strided slow frames, ImageNet mean/std."""
    base: dict[str, object] = dict(lateral_norm=False, res5_dilation=1, slow_sampling="stride",
                                   normalization=Normalization.imagenet())
    base.update(overrides)
    return SlowFastSpec(**base)  # type: ignore[arg-type]


class ConvBN(nn.Module):
    """Conv3d (no bias) + optional BatchNorm3d + optional ReLU."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        padding: tuple[int, int, int] = (0, 0, 0),
        dilation: tuple[int, int, int] = (1, 1, 1),
        norm: bool = True,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride, padding, dilation, bias=False)
        self.bn = nn.BatchNorm3d(c_out) if norm else None
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return torch.relu_(x) if self.relu else x


class Bottleneck(nn.Module):
    """``Tk x 1 x 1`` -> ``1 x 3 x 3`` (spatial stride, dilation) -> ``1 x 1 x 1`` with a residual."""

    def __init__(self, c_in: int, inner: int, stride: int, dilation: int, temporal_kernel: int,
                 non_local: bool = False) -> None:
        super().__init__()
        c_out = inner * EXPANSION
        tk = temporal_kernel
        self.conv_a = nn.Conv3d(c_in, inner, (tk, 1, 1), padding=(tk // 2, 0, 0), bias=False)
        self.bn_a = nn.BatchNorm3d(inner)
        self.conv_b = nn.Conv3d(inner, inner, (1, 3, 3), stride=(1, stride, stride),
                                padding=(0, dilation, dilation), dilation=(1, dilation, dilation), bias=False)
        self.bn_b = nn.BatchNorm3d(inner)
        self.conv_c = nn.Conv3d(inner, c_out, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(c_out)
        self.shortcut = (
            ConvBN(c_in, c_out, (1, 1, 1), stride=(1, stride, stride), relu=False)
            if (stride != 1 or c_in != c_out)
            else None
        )
        self.non_local = NonLocalEmbedGauss(c_out) if non_local else None

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        y = torch.relu_(self.bn_a(self.conv_a(x)))
        y = torch.relu_(self.bn_b(self.conv_b(y)))
        y = self.bn_c(self.conv_c(y))
        y = torch.relu_(y + identity)
        return y if self.non_local is None else self.non_local(y)


class Stem(nn.Module):
    """``Tk x 7 x 7`` conv, stride (1, 2, 2) + BN + ReLU + ``1 x 3 x 3`` max-pool stride (1, 2, 2): stride 4."""

    def __init__(self, c_out: int, temporal_kernel: int) -> None:
        super().__init__()
        tk = temporal_kernel
        self.conv = nn.Conv3d(3, c_out, (tk, 7, 7), stride=(1, 2, 2), padding=(tk // 2, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(c_out)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(torch.relu_(self.bn(self.conv(x))))


class Pathway(nn.Module):
    """Stem + res2..res5 of one pathway; ``extra_in[i]`` channels are fused in before stage i."""

    def __init__(
        self,
        width: int,
        blocks: Sequence[int],
        temporal_kernels: Sequence[int],
        res5_dilation: int,
        extra_in: Sequence[int] = (0, 0, 0, 0),
        non_local_stages: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.stem = Stem(width, temporal_kernels[0])
        c_in = width
        strides = (1, 2, 2, 1)
        dilations = (1, 1, 1, res5_dilation)
        for i in range(4):
            inner = width * 2**i
            stage = []
            for b in range(blocks[i]):
                stage.append(
                    Bottleneck(
                        (c_in + extra_in[i]) if b == 0 else inner * EXPANSION,
                        inner,
                        strides[i] if b == 0 else 1,
                        dilations[i],
                        temporal_kernels[i + 1],
                        non_local=i in non_local_stages and b % 2 == 0,
                    )
                )
            self.add_module(f"res{i + 2}", nn.Sequential(*stage))
            c_in = inner * EXPANSION
        self.out_channels = c_in

    def stage(self, i: int) -> nn.Sequential:
        """res(i+2) for i in 0..3."""
        return getattr(self, f"res{i + 2}")


class SlowFastResNet(VideoBackbone):
    """SlowFast (two pathways) or SlowOnly (one) ResNet returning stride-16 maps.

    forward: clip ``[B, 3, T, H, W]`` -> :class:`BackboneOutput` with maps
    Slow ``[B, 32 * width, T / alpha, ceil(H/16), ceil(W/16)]`` and (SlowFast only) Fast
    ``[B, 32 * width / beta_inv, T, ceil(H/16), ceil(W/16)]``; SlowOnly keeps ``T`` frames.
    For SlowFast, ``T`` is the Fast frame count (a multiple of ``alpha``).
    """

    def __init__(self, spec: SlowFastSpec) -> None:
        blocks = spec.stage_blocks()
        slow_out = spec.width * 8 * EXPANSION
        fast_out = spec.fast_width * 8 * EXPANSION if spec.fast else 0
        super().__init__(
            pathway_channels=(slow_out, fast_out) if spec.fast else (slow_out,),
            normalization=spec.normalization,
        )
        self.spec = spec
        extra = (0, 0, 0, 0)
        if spec.fast:
            fw = spec.fast_width
            fast_stage_in = [fw] + [fw * 2**i * EXPANSION for i in range(3)]  # stem, res2, res3, res4 outputs
            extra = tuple(spec.fusion_ratio * c for c in fast_stage_in)  # type: ignore[assignment]
        self.slow = Pathway(spec.width, blocks, spec.slow_temporal_kernels, spec.res5_dilation, extra,
                            spec.non_local_stages)
        if spec.fast:
            self.fast: Pathway | None = Pathway(
                spec.fast_width, blocks, spec.fast_temporal_kernels, spec.res5_dilation
            )
            k = spec.fusion_kernel
            self.laterals = nn.ModuleList(
                ConvBN(c, spec.fusion_ratio * c, (k, 1, 1), stride=(spec.alpha, 1, 1), padding=(k // 2, 0, 0),
                       norm=spec.lateral_norm, relu=spec.lateral_norm)
                for c in fast_stage_in
            )
        else:
            self.fast = None
            self.laterals = nn.ModuleList()

    def slow_indices(self, num_frames: int) -> Tensor:
        """Which of ``num_frames`` Fast frames the Slow pathway sees (``num_frames // alpha`` of them)."""
        n = num_frames // self.spec.alpha
        if self.spec.slow_sampling == "linspace":
            return torch.linspace(0, num_frames - 1, n).long()
        return torch.arange(n) * self.spec.alpha

    def forward_features(self, x: Tensor) -> BackboneOutput:
        if self.fast is None:
            s = self.slow.stem(x)
            for i in range(4):
                s = self.slow.stage(i)(s)
            return BackboneOutput([s])
        t = x.shape[2]
        if t % self.spec.alpha:
            raise ValueError(f"SlowFast needs T divisible by alpha={self.spec.alpha}, got T={t}")
        s = self.slow.stem(x.index_select(2, self.slow_indices(t).to(x.device)))
        f = self.fast.stem(x)
        s = torch.cat([s, self.laterals[0](f)], dim=1)
        for i in range(4):
            s = self.slow.stage(i)(s)
            f = self.fast.stage(i)(f)
            if i < 3:
                s = torch.cat([s, self.laterals[i + 1](f)], dim=1)
        return BackboneOutput([s, f])
