"""Actor (RoI) features and pooled context maps from stride-16 backbone maps.

Recipe (SlowFast/LFB/ACAR on AVA): per pathway, average over time; ``roi_align`` each box at
``spatial_scale = 1/16`` to ``S x S`` (7 in PySlowFast, 8 in MMAction2); max over the ``S x S``
cells; concatenate pathways (2048 + 256 = 2304 for SlowFast R50).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from stad_core.models.base import STRIDE


#: Columns of :func:`box_geometry`.
GEOMETRY_DIM = 5


def box_geometry(boxes: Tensor) -> Tensor:
    """``[N, 4]`` normalised xyxy boxes -> ``[N, 5]``: x1, y1, x2, y2 and log(height / width).

    RoIAlign resamples every box to the same ``S x S`` grid and the spatial max drops the layout,
    so an actor row alone no longer says how tall, wide or where the box is; a seated person differs
    from a standing one mostly in exactly that. These columns put it back (the aspect as a log, so
    a linear layer sees it).
    """
    b = boxes.float()
    w = (b[:, 2] - b[:, 0]).clamp_min(1e-4)
    h = (b[:, 3] - b[:, 1]).clamp_min(1e-4)
    return torch.cat([b, torch.log(h / w)[:, None]], dim=1)


def appearance_dim(grid: int) -> int:
    """Columns of :func:`appearance_targets` for a ``grid x grid`` box layout (RGB per cell + the frame's RGB)."""
    return 3 * grid * grid + 3


def appearance_targets(clips: Tensor, boxes: Sequence[Tensor], grid: int = 1) -> Tensor:
    """Mean colours of the box (``grid x grid`` cells, row-major) and of the whole key frame, in [0, 1].

    Used twice: as auxiliary fine-tuning targets (``FinetuneConfig.appearance_weight``) and as columns
    appended to the bank rows (``ExtractConfig.roi_appearance``).

    clips ``[B, T, H, W, 3]`` uint8 (as decoded; the key frame is the middle one), ``B`` normalised
    box tensors ``[N_i, 4]`` -> ``[sum N_i, appearance_dim(grid)]`` (cell R, G, B ..., frame R, G, B).
    Fine-tuning on the action labels alone keeps only what those labels need, and an actor row then
    forgets what the person and the scene looked like: what a long-term bank is read for (who picked
    up the key, whether the room flashed red), and with ``grid`` 2 which way the person faces (the
    cap's bill and the eye sit on one side of the head). Predicting these colours from the row is a
    label-free way to keep it.
    """
    frames = clips[:, clips.shape[1] // 2].float() / 255.0  # [B, H, W, 3]
    h, w = frames.shape[1:3]
    out = []
    for frame, b in zip(frames, boxes, strict=True):
        whole = frame.mean(dim=(0, 1))
        for x1, y1, x2, y2 in b.tolist():
            c0 = min(int(x1 * w), w - 1)
            r0 = min(int(y1 * h), h - 1)
            c1, r1 = max(int(round(x2 * w)), c0 + grid), max(int(round(y2 * h)), r0 + grid)
            patch = frame[r0:r1, c0:c1].permute(2, 0, 1)  # [3, h_box, w_box] (may run past the edge: clipped)
            cells = F.adaptive_avg_pool2d(patch, grid).permute(1, 2, 0).reshape(-1)  # [grid * grid * 3]
            out.append(torch.cat([cells, whole]))
    return torch.stack(out) if out else torch.zeros((0, appearance_dim(grid)))


def boxes_to_rois(boxes_per_clip: Sequence[Tensor], image_size: tuple[int, int],
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised ``[N_i, 4]`` xyxy boxes per clip -> ``[sum N_i, 5]`` (clip index, x1, y1, x2, y2) in pixels."""
    h, w = image_size
    rois = []
    for i, boxes in enumerate(boxes_per_clip):
        b = boxes.to(dtype) * torch.tensor([w, h, w, h], dtype=dtype, device=boxes.device)
        rois.append(torch.cat([torch.full((b.shape[0], 1), float(i), dtype=dtype, device=b.device), b], dim=1))
    if not rois:
        return torch.zeros((0, 5), dtype=dtype)
    return torch.cat(rois, dim=0)


def roi_actor_features(
    maps: Sequence[Tensor],
    boxes_per_clip: Sequence[Tensor],
    image_size: tuple[int, int],
    output_size: int = 7,
    aligned: bool = False,
    sampling_ratio: int = 0,
    temporal_pool: Literal["mean", "max"] = "mean",
    with_context: bool = False,
) -> Tensor:
    """Per-actor feature vectors.

    Args:
        maps: per pathway ``[B, C_p, T_p, h, w]`` at stride 16 (the backbone output).
        boxes_per_clip: ``B`` tensors ``[N_i, 4]``, normalised xyxy in [0, 1] of the input clip.
        image_size: ``(H, W)`` of the clip fed to the backbone (pixels).
        output_size: RoIAlign grid ``S`` (7 or 8).
        aligned: RoIAlign's half-pixel alignment (``aligned=True`` in Detectron2 style).
        temporal_pool: ``"mean"`` (default) or ``"max"`` over the map's time axis before RoIAlign
            (MMAction2's ``temporal_pool_mode='max'`` AVA trick).
        with_context: also append the clip's global feature, ``S x S`` adaptive average pooling of
            the pooled map then max over the cells (MMAction2's ``with_global=True`` extractor with
            its head's spatial max): the actor's clip context, same for every actor of a clip.

    Returns:
        ``[sum N_i, sum C_p]`` float32 (float64 for float64 maps), rows in clip order then box order;
        ``[sum N_i, 2 * sum C_p]`` with context (RoI parts first, then the context parts).
    """
    if len(boxes_per_clip) != maps[0].shape[0]:
        raise ValueError(f"{len(boxes_per_clip)} box sets for a batch of {maps[0].shape[0]} clips")
    # Box coordinates in fp32 at least (fp16 pixel coordinates lose sub-pixel precision).
    box_dtype = torch.float64 if maps[0].dtype == torch.float64 else torch.float32
    rois = boxes_to_rois(boxes_per_clip, image_size, box_dtype).to(maps[0].device)
    parts, context = [], []
    clip_of_row = rois[:, 0].long()
    for fmap in maps:
        if temporal_pool == "max":
            pooled = fmap.to(box_dtype).amax(dim=2)
        else:
            pooled = fmap.mean(dim=2, dtype=box_dtype)  # [B, C, h, w]: temporal average (fp32 for fp16 maps)
        r = roi_align(pooled, rois, output_size, spatial_scale=1.0 / STRIDE,
                      sampling_ratio=sampling_ratio, aligned=aligned)  # [N, C, S, S]
        parts.append(r.amax(dim=(2, 3)))
        if with_context:
            whole = F.adaptive_avg_pool2d(pooled, output_size).amax(dim=(2, 3))  # [B, C]
            context.append(whole[clip_of_row])
    return torch.cat(parts + context, dim=1)


def context_maps(maps: Sequence[Tensor], output_size: int | tuple[int, int] | None = None) -> Tensor:
    """Per-clip context map: temporal average per pathway, pathways concatenated.

    Args:
        maps: per pathway ``[B, C_p, T_p, h, w]`` (same ``h, w``).
        output_size: optional adaptive average pooling to a fixed grid (e.g. 16) so clips of any
            aspect ratio store the same shape.

    Returns:
        ``[B, sum C_p, h, w]`` (or ``[B, sum C_p, *output_size]``).
    """
    x = torch.cat([m.mean(dim=2) for m in maps], dim=1)
    if output_size is not None:
        x = F.adaptive_avg_pool2d(x, output_size)
    return x


class ActorFeatureExtractor(nn.Module):
    """Thin module around :func:`roi_actor_features` (settings fixed at construction)."""

    def __init__(self, output_size: int = 7, aligned: bool = False, sampling_ratio: int = 0) -> None:
        super().__init__()
        self.output_size = output_size
        self.aligned = aligned
        self.sampling_ratio = sampling_ratio

    def forward(self, maps: Sequence[Tensor], boxes_per_clip: Sequence[Tensor],
                image_size: tuple[int, int]) -> Tensor:
        return roi_actor_features(maps, boxes_per_clip, image_size, self.output_size, self.aligned,
                                  self.sampling_ratio)
