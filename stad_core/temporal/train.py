"""Training and scoring of the temporal heads (Coarse-Fine and its baselines) on fine-bank features.

Every video is resampled to ``input_steps`` feature steps (linear interpolation in time; a no-op
when the bank already has that many), so videos of any length batch together. Step i of a video of
``length`` seconds stands for second ``(i + 0.5) / input_steps * length``; its target is the set of
classes active then (:func:`stad_core.temporal.labels.labels_at`). Features are standardised with
the training set's per-channel mean and std (kept in the checkpoint). Loss: binary cross-entropy
per step and class. Scores for the Charades metric are read at the script's 25 time points from the
step containing each point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from stad_core.config import StageConfig
from stad_core.errors import StadError
from stad_core.heads.coarse_fine import build_temporal_head
from stad_core.temporal.annotations import TemporalVideo
from stad_core.temporal.features import COARSE
from stad_core.temporal.labels import labels_at
from stad_core.temporal.metric import FRAMES_PER_VIDEO, FrameMAP, charades_localize, sample_at_localize_times

HeadName = Literal["coarse_fine", "coarse_grid", "coarse_uniform", "fine_only"]


class TemporalTrainConfig(StageConfig):
    """A temporal head and how it is trained (``coarse_dim``, ``fine_dims``, ``num_classes``: from the bank)."""

    head: HeadName = "coarse_fine"
    input_steps: int = Field(64, ge=4, description="feature steps per video the head sees")
    samples: int = Field(16, ge=2, description="coarse samples per video (Grid Pool's output)")
    channels: int = Field(64, ge=4)
    blocks: int = Field(4, ge=1)
    fuse_after: int = Field(2, ge=1)
    sigma: float = Field(0.5, gt=0, description="Gaussian width, in coarse spacings")
    location: float = Field(0.0, description="Gaussian offset, in coarse spacings")
    fine_dropout: float = Field(0.3, ge=0, lt=1, description="dropout on the fine features (fusion, fine_only)")
    fine_depths: tuple[str, ...] | None = Field(None, description="depths fused (None: every depth of the bank)")
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    seed: int = 0
    coarse_dim: int | None = None
    fine_dims: tuple[int, ...] | None = None
    num_classes: int | None = None


@dataclass
class TemporalSet:
    """Videos as tensors: coarse ``[V, C_in, S]``, fine list of ``[V, D_k, S]``, labels ``[V, K, S]``."""

    videos: list[TemporalVideo]
    coarse: torch.Tensor
    fine: list[torch.Tensor]
    labels: torch.Tensor
    norm: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


def resample(x: np.ndarray, steps: int) -> torch.Tensor:
    """``[T, D]`` -> ``[D, steps]`` (linear in time)."""
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).T.unsqueeze(0)  # [1, D, T]
    if t.shape[-1] == steps:
        return t[0]
    return F.interpolate(t, size=steps, mode="linear", align_corners=False)[0]


def build_set(videos: Sequence[TemporalVideo], features: Callable[[str], Mapping[str, np.ndarray]],
              depths: Sequence[str], num_classes: int, steps: int,
              norm: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> TemporalSet:
    """Tensors of ``videos`` from ``features(video_id)`` (per-depth ``[S, D_k]``); ``norm``: the
    training set's (mean, std) per input (computed here when None)."""
    if not videos:
        raise StadError("no videos to build a temporal set from")
    names = [COARSE, *depths]
    stacks: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    labels = []
    for v in videos:
        feats = features(v.video_id)
        for n in names:
            if n not in feats:
                raise StadError(f"video {v.video_id}: the bank has no {n!r} features (has {', '.join(feats)})")
            stacks[n].append(resample(feats[n], steps))
        times = (np.arange(steps) + 0.5) / steps * v.length
        labels.append(torch.from_numpy(labels_at(v, times, num_classes).T.astype(np.float32)))
    tensors = {n: torch.stack(s) for n, s in stacks.items()}
    if norm is None:
        norm = {n: (t.mean(dim=(0, 2), keepdim=True)[0], t.std(dim=(0, 2), keepdim=True)[0].clamp_min(1e-4))
                for n, t in tensors.items()}
    tensors = {n: (t - norm[n][0]) / norm[n][1] for n, t in tensors.items()}
    return TemporalSet(list(videos), tensors[COARSE], [tensors[d] for d in depths], torch.stack(labels), dict(norm))


def make_head(config: TemporalTrainConfig) -> torch.nn.Module:
    if config.coarse_dim is None or config.fine_dims is None or config.num_classes is None:
        raise StadError("the temporal head's dimensions are not set (coarse_dim, fine_dims, num_classes)")
    return build_temporal_head(config.head, config.coarse_dim, config.fine_dims, config.num_classes,
                               samples=config.samples, channels=config.channels, blocks=config.blocks,
                               fuse_after=config.fuse_after, sigma=config.sigma, location=config.location,
                               fine_dropout=config.fine_dropout)


@dataclass
class FitResult:
    head: torch.nn.Module
    losses: list[float]


def fit(config: TemporalTrainConfig, data: TemporalSet, *, device: str = "cpu",
        on_epoch: Callable[[int, float], None] | None = None) -> FitResult:
    """Train a fresh head (seeded by ``config.seed``) for ``config.epochs`` epochs."""
    torch.manual_seed(config.seed)
    head = make_head(config).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    gen = torch.Generator().manual_seed(config.seed)
    n = len(data.videos)
    losses = []
    for epoch in range(config.epochs):
        head.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            logits = head(data.coarse[idx].to(device), [f[idx].to(device) for f in data.fine])
            loss = F.binary_cross_entropy_with_logits(logits, data.labels[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        losses.append(total / n)
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    return FitResult(head.eval(), losses)


def predict(head: torch.nn.Module, data: TemporalSet, *, device: str = "cpu", batch_size: int = 16) -> np.ndarray:
    """Per-step probabilities ``[V, K, S]``."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(data.videos), batch_size):
            sl = slice(start, start + batch_size)
            out.append(torch.sigmoid(head(data.coarse[sl].to(device), [f[sl].to(device) for f in data.fine])).cpu())
    return torch.cat(out).numpy()


def localize_predictions(videos: Sequence[TemporalVideo], scores: np.ndarray,
                         frames_per_video: int = FRAMES_PER_VIDEO) -> dict[tuple[str, int], np.ndarray]:
    """``(video_id, frame 1..25) -> scores [K]`` from per-step scores ``[V, K, S]``."""
    preds: dict[tuple[str, int], np.ndarray] = {}
    steps = scores.shape[-1]
    for v, s in zip(videos, scores, strict=True):
        at = sample_at_localize_times(s.T, v.length, v.length / steps, frames_per_video)
        preds.update({(v.video_id, j + 1): at[j] for j in range(frames_per_video)})
    return preds


def evaluate(head: torch.nn.Module, data: TemporalSet, num_classes: int, *, device: str = "cpu") -> FrameMAP:
    """Charades_v1_localize of ``head`` on ``data``."""
    return charades_localize(data.videos, localize_predictions(data.videos, predict(head, data, device=device)),
                             num_classes)


def head_gflops(head: torch.nn.Module, data: TemporalSet) -> float:
    """GFLOPs of the head on one video (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        head(data.coarse[:1], [f[:1] for f in data.fine])
    return counter.get_total_flops() / 1e9


def checkpoint(config: TemporalTrainConfig, head: torch.nn.Module, data: TemporalSet, depths: Sequence[str]) -> dict[str, Any]:
    return {"config": config.model_dump(mode="json"), "state": head.state_dict(), "depths": list(depths),
            "norm": {k: (m, s) for k, (m, s) in data.norm.items()}}
