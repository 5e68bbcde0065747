"""Coarse-Fine Networks (Kahatapitiya & Ryoo, CVPR 2021) on a fine-feature bank, and its baselines.

Every video is a sequence of T feature steps (a fine-feature bank's rows). Two inputs per step:

* ``coarse`` ``[B, C_in, T]``: the raw, cheap view the Coarse stream learns from (low-resolution
  frames), which Grid Pool resamples to N << T positions chosen per video;
* ``fine`` list of ``[B, D_k, T]``: frozen Fine-stream features from several depths (the bank).

:class:`CoarseFineNet` = Grid Pool -> temporal conv blocks over the N samples -> at one depth,
Multi-stage Fusion of the fine features scales and shifts the coarse features -> per-sample logits
-> Grid Unpool back to ``[B, K, T]``. Fusion: (1) a self-attention mask (a sigmoid gate computed
from each fine feature itself) filters the fine features; (2) Gaussians centred on the coarse
samples' positions (width ``sigma`` and offset ``location``, both in units of the mean coarse
spacing) average the fine steps around each sample, aligning fine to coarse in time; (3) the aligned
features of all depths are concatenated and a 1x1 conv predicts a scale and a shift for the coarse
features (``h * (1 + scale) + shift``; zero-initialised, so training starts from the coarse stream).

Baselines: ``grid_pool=False`` samples uniformly (coarse-only uniform when also ``fuse=False``);
``fuse=False`` drops the fine features (coarse-only); :class:`FineOnlyNet` classifies every step from
its fine features alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from stad_core.heads.grid_pool import GridPool, grid_unpool, interpolate_at, uniform_positions


class TemporalBlock(nn.Module):
    """Residual dilated temporal conv: ``[B, C, N] -> [B, C, N]``."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation), nn.GroupNorm(1, channels),
            nn.ReLU(inplace=True), nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.conv(x))


class MultiStageFusion(nn.Module):
    """Fine features of several depths -> (scale, shift) ``[B, C, N]`` for the coarse features."""

    def __init__(self, fine_dims: Sequence[int], channels: int, *, sigma: float = 0.5, location: float = 0.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.sigma, self.location = float(sigma), float(location)
        self.dropout = nn.Dropout(dropout)  # the fine bank is wide and frozen: regularise what it adds
        self.masks = nn.ModuleList(nn.Conv1d(d, 1, 1) for d in fine_dims)
        self.project = nn.Conv1d(sum(fine_dims), 2 * channels, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def gaussians(self, positions: Tensor, length: int) -> Tensor:
        """``[B, N, T]`` weights over fine steps (rows sum to 1) centred on ``positions [B, N]``."""
        spacing = length / positions.shape[1]
        steps = torch.arange(length, device=positions.device, dtype=positions.dtype) + 0.5  # fine step centres
        centre = positions.unsqueeze(-1) + self.location * spacing
        logits = -0.5 * ((steps.view(1, 1, -1) - centre) / (self.sigma * spacing)) ** 2
        return torch.softmax(logits, dim=-1)

    def forward(self, fine: Sequence[Tensor], positions: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.gaussians(positions, fine[0].shape[-1])  # [B, N, T]
        aligned = []
        for f, mask in zip(fine, self.masks, strict=True):
            gated = f * torch.sigmoid(mask(f))  # (1) self-attention mask, [B, D_k, T]
            aligned.append(torch.einsum("bnt,bdt->bdn", weights, gated))  # (2) Gaussian alignment, [B, D_k, N]
        scale, shift = self.project(self.dropout(torch.cat(aligned, dim=1))).chunk(2, dim=1)  # (3) [B, C, N] each
        return scale, shift


class CoarseFineNet(nn.Module):
    """Coarse stream (+ Grid Pool, + fusion of the fine bank) -> per-step logits ``[B, K, T]``."""

    def __init__(self, coarse_dim: int, fine_dims: Sequence[int], num_classes: int, *, samples: int = 32,
                 channels: int = 64, blocks: int = 4, fuse_after: int = 2, grid_pool: bool = True,
                 fuse: bool = True, sigma: float = 0.5, location: float = 0.0, fine_dropout: float = 0.0) -> None:
        super().__init__()
        self.samples, self.fuse_after = samples, fuse_after
        self.grid_pool = GridPool(coarse_dim, samples) if grid_pool else None
        self.stem = nn.Conv1d(coarse_dim, channels, 1)
        self.blocks = nn.ModuleList(TemporalBlock(channels, 2 ** (i % 4)) for i in range(blocks))
        self.fusion = (MultiStageFusion(fine_dims, channels, sigma=sigma, location=location, dropout=fine_dropout)
                       if fuse else None)
        self.classifier = nn.Conv1d(channels, num_classes, 1)

    def sample(self, coarse: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, C_in, T]`` -> samples ``[B, C_in, N]`` and their positions ``[B, N]``."""
        if self.grid_pool is not None:
            return self.grid_pool(coarse)
        positions = uniform_positions(coarse.shape[0], self.samples, coarse.shape[-1], coarse.device)
        return interpolate_at(coarse, positions), positions

    def forward(self, coarse: Tensor, fine: Sequence[Tensor] = ()) -> Tensor:
        length = coarse.shape[-1]
        x, positions = self.sample(coarse)
        h = self.stem(x)  # [B, C, N]
        for i, block in enumerate(self.blocks):
            h = block(h)
            if self.fusion is not None and i + 1 == self.fuse_after:
                scale, shift = self.fusion(fine, positions)
                h = h * (1 + scale) + shift
        return grid_unpool(self.classifier(h), positions, length)  # [B, K, T]


class FineOnlyNet(nn.Module):
    """Per-step classifier on the fine features alone: ``[B, D_k, T]``... -> ``[B, K, T]``."""

    def __init__(self, fine_dims: Sequence[int], num_classes: int, *, hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Conv1d(sum(fine_dims), hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv1d(hidden, num_classes, 1))

    def forward(self, coarse: Tensor | None, fine: Sequence[Tensor] = ()) -> Tensor:
        return self.net(torch.cat(list(fine), dim=1))


TEMPORAL_HEADS = ("coarse_fine", "coarse_grid", "coarse_uniform", "fine_only")


def build_temporal_head(name: str, coarse_dim: int, fine_dims: Sequence[int], num_classes: int, *,
                        samples: int = 32, channels: int = 64, blocks: int = 4, fuse_after: int = 2,
                        sigma: float = 0.5, location: float = 0.0, fine_dropout: float = 0.0) -> nn.Module:
    """``coarse_fine`` | ``coarse_grid`` (Grid Pool, no fine) | ``coarse_uniform`` | ``fine_only``."""
    if name == "fine_only":
        return FineOnlyNet(fine_dims, num_classes, hidden=2 * channels, dropout=fine_dropout)
    if name not in TEMPORAL_HEADS:
        raise ValueError(f"unknown temporal head {name!r} (choose from {', '.join(TEMPORAL_HEADS)})")
    return CoarseFineNet(coarse_dim, fine_dims, num_classes, samples=samples, channels=channels, blocks=blocks,
                         fuse_after=fuse_after, grid_pool=name in ("coarse_fine", "coarse_grid"),
                         fuse=name == "coarse_fine", sigma=sigma, location=location, fine_dropout=fine_dropout)
