"""The one backbone interface: clip tensor -> per-pathway feature maps at spatial stride 16."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

STRIDE = 16


@dataclass(frozen=True)
class Normalization:
    """Per-channel RGB mean/std in 0-1 units, applied inside the backbone.

    MMAction2's ImageNet values on 0-255 (mean 123.675/116.28/103.53, std 58.395/57.12/57.375)
    are exactly :meth:`imagenet` on 0-1.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def kinetics(cls) -> Normalization:
        """PySlowFast's ``DATA.MEAN=0.45``, ``DATA.STD=0.225``."""
        return cls((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))

    @classmethod
    def imagenet(cls) -> Normalization:
        return cls((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

    @classmethod
    def torchvision_video(cls) -> Normalization:
        """torchvision's Kinetics-400 video classification transforms."""
        return cls((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))


@dataclass
class BackboneOutput:
    """Per-pathway maps, each ``[B, C_p, T_p, ceil(H/16), ceil(W/16)]`` (same spatial size)."""

    maps: list[Tensor]

    @property
    def channels(self) -> int:
        return sum(m.shape[1] for m in self.maps)


class VideoBackbone(nn.Module):
    """Base class: normalises the clip, then :meth:`forward_features` returns stride-16 maps.

    Subclasses set ``pathway_channels`` (channels of each returned map) and implement
    ``forward_features(x: float [B, 3, T, H, W] normalised) -> BackboneOutput``.
    """

    stride: int = STRIDE

    def __init__(self, pathway_channels: tuple[int, ...], normalization: Normalization) -> None:
        super().__init__()
        self.pathway_channels = pathway_channels
        self.normalization = normalization
        self.register_buffer("_mean", torch.tensor(normalization.mean).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(normalization.std).view(1, 3, 1, 1, 1), persistent=False)

    @property
    def out_channels(self) -> int:
        """Channels of the concatenated pathways (e.g. 2304 for SlowFast R50)."""
        return sum(self.pathway_channels)

    def normalize(self, clip: Tensor) -> Tensor:
        """``[B, 3, T, H, W]`` uint8 (0-255) or float (0-1) -> normalised float."""
        x = clip.float().div_(255.0) if clip.dtype == torch.uint8 else clip
        return (x - self._mean.to(x.dtype)) / self._std.to(x.dtype)

    def forward_features(self, x: Tensor) -> BackboneOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, clip: Tensor) -> BackboneOutput:
        """clip ``[B, 3, T, H, W]`` (uint8 0-255 or float 0-1) -> :class:`BackboneOutput`."""
        if clip.dim() != 5 or clip.shape[1] != 3:
            raise ValueError(f"expected a clip [B, 3, T, H, W], got {tuple(clip.shape)}")
        return self.forward_features(self.normalize(clip))


def frames_to_clip(frames: Tensor) -> Tensor:
    """Decoded frames ``[B, T, H, W, 3]`` (or ``[T, H, W, 3]``) uint8 -> ``[B, 3, T, H, W]``."""
    if frames.dim() == 4:
        frames = frames.unsqueeze(0)
    return frames.permute(0, 4, 1, 2, 3).contiguous()
