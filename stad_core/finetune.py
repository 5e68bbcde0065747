"""End-to-end backbone fine-tuning for actor classification (backbone + linear RoI head).

One training example is a keyframe clip with its ground-truth person boxes and their multi-hot
action labels; the loss is multi-label BCE over the actors. Options: frozen BatchNorm (statistics
and affine parameters fixed, as for small batches), box jitter (training-time noise on the boxes),
horizontal flips. A checkpoint at the end of every epoch holds the model, optimiser, RNG state and
history, so a killed run resumes exactly where the last complete epoch ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from stad_core.atomic import atomic_write
from stad_core.ava.table import AvaTable
from stad_core.config import StageConfig
from stad_core.heads.acrn import ACRNHead
from stad_core.heads.inputs import HeadInputs
from stad_core.models.actor_features import appearance_targets, context_maps, roi_actor_features
from stad_core.models.base import VideoBackbone, frames_to_clip
from stad_core.progress import ProgressFn
from stad_core.train.schedule import WarmupSteps


class FinetuneConfig(StageConfig):
    """Clip sampling and optimisation of backbone fine-tuning."""

    num_frames: int = Field(32, ge=1)
    stride: int = Field(2, ge=1)
    short_side: int | None = Field(256, ge=32)
    roi_output_size: int = Field(7, ge=1)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1, description="clips per step (clips of one batch must share a frame size)")
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="sgd (momentum) or adamw; from scratch on a small "
                                                "dataset AdamW learns in far fewer steps (docs/heads.md)")
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-5, ge=0)
    warmup_steps: int = Field(20, ge=0)
    schedule: Literal["constant", "cosine"] = Field("constant", description="after the warm-up: keep the rate, or "
                                                      "decay it to 0 by the last step (cosine)")
    dropout: float = Field(0.5, ge=0, lt=1)
    appearance_weight: float = Field(0.0, ge=0, description="weight of an auxiliary loss: predict the mean colours of "
                                     "the box and of the whole keyframe from the actor row (0: off; docs/heads.md)")
    appearance_grid: int = Field(1, ge=1, le=4, description="the box's colours on this grid (2: left/right, top/bottom)")
    relation_dim: int = Field(0, ge=0, description="also train an ACRN head of this width on the backbone's context "
                              "map (0: off), so the maps keep what relational classes need (docs/heads.md)")
    frozen_bn: bool = Field(False, description="keep BatchNorm statistics and affine parameters fixed")
    box_jitter: float = Field(0.05, ge=0, le=0.5, description="max box shift/scale noise, relative to box size")
    hflip: bool = True
    num_workers: int = Field(0, ge=0)
    seed: int = 0


@dataclass
class ActorSample:
    """One keyframe: its video, second, person boxes ``[N, 4]`` normalised and labels ``[N, K]`` multi-hot."""

    video_path: str
    video_id: str
    timestamp: int
    boxes: np.ndarray
    labels: np.ndarray


def actor_samples(table: AvaTable, video_paths: Mapping[str, str | Path], action_ids: Sequence[int]) -> list[ActorSample]:
    """Group a ground-truth table into per-keyframe samples (one row per distinct box).

    ``action_ids`` fixes the label order (column ``k`` is ``action_ids[k]``); other actions are
    ignored, boxes with none of them are kept as all-zero rows (negatives).
    """
    column = {a: k for k, a in enumerate(action_ids)}
    groups: dict[tuple[str, int], dict[tuple[float, ...], np.ndarray]] = {}
    for r in range(len(table)):
        vid = str(table.videos[table.video_index[r]])
        key = (vid, int(round(float(table.timestamp[r]))))
        box = tuple(np.round(table.boxes[r], 6).tolist())
        labels = groups.setdefault(key, {}).setdefault(box, np.zeros(len(action_ids), np.float32))
        k = column.get(int(table.action_id[r]))
        if k is not None:
            labels[k] = 1.0
    out = []
    for (vid, t), boxes in sorted(groups.items()):
        if vid not in video_paths:
            continue
        out.append(ActorSample(str(video_paths[vid]), vid, t, np.array(list(boxes), np.float32),
                               np.stack(list(boxes.values()))))
    return out


class ActorClipDataset(Dataset):
    """Decodes the clip of each :class:`ActorSample`: ``(clip uint8 [T, H, W, 3], boxes, labels)``."""

    def __init__(self, samples: Sequence[ActorSample], num_frames: int, stride: int, short_side: int | None) -> None:
        self.samples = list(samples)
        self.num_frames, self.stride, self.short_side = num_frames, stride, short_side

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        from stad_core.video import decode_clip

        s = self.samples[i]
        clip = decode_clip(s.video_path, float(s.timestamp), self.num_frames, self.stride, short_side=self.short_side)
        return clip, torch.from_numpy(s.boxes), torch.from_numpy(s.labels)


def _collate(items: list[tuple[Tensor, Tensor, Tensor]]) -> tuple[Tensor, list[Tensor], Tensor]:
    clips, boxes, labels = zip(*items, strict=True)
    return torch.stack(clips), list(boxes), torch.cat(labels)


class ActorClassifier(nn.Module):
    """Backbone -> RoI actor features (temporal avg, RoIAlign, spatial max) -> dropout -> linear.

    forward: clip ``[B, 3, T, H, W]`` + ``B`` box tensors ``[N_i, 4]`` -> logits ``[sum N_i, K]``.
    Training-only extras (the backbone is what fine-tuning keeps):

    * ``appearance`` > 0: a linear layer reads the same actor row and predicts that many
      :func:`appearance_targets` columns;
    * ``relation`` > 0: an ACRN head of that width (actor row tiled over the clip's context map,
      ``context_grid`` cells, plus the box's location map) classifies the actors too. Its loss
      reaches the backbone through the context map, which then has to show what the relational
      classes need (which way a person faces, the speaker or the jumper ahead); the RoI-only
      classifier never asks for that, and the banks' rows and maps lose it (docs/heads.md).
    """

    def __init__(self, backbone: VideoBackbone, num_classes: int, roi_output_size: int = 7, dropout: float = 0.5,
                 appearance: int = 0, relation: int = 0, context_grid: int = 8) -> None:
        super().__init__()
        self.backbone = backbone
        self.roi_output_size = roi_output_size
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.out_channels, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)
        self.appearance = nn.Linear(backbone.out_channels, appearance) if appearance else None
        self.context_grid = context_grid
        self.relation: nn.Module | None = None
        if relation:
            c = backbone.out_channels
            self.relation = ACRNHead(c, c, num_classes, relation_dim=relation, dropout=dropout)

    def training_outputs(self, clip: Tensor, boxes: Sequence[Tensor]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Action logits ``[sum N_i, K]``; with ``appearance``, predicted colours ``[sum N_i, appearance]``;
        with ``relation``, the ACRN head's logits ``[sum N_i, K]`` (else None)."""
        maps = self.backbone(clip).maps
        feats = roi_actor_features(maps, boxes, tuple(clip.shape[3:]), self.roi_output_size)
        colours = self.appearance(feats) if self.appearance is not None else None
        relation = None
        if self.relation is not None:
            clip_index = torch.cat([torch.full((len(b),), i, dtype=torch.int64, device=feats.device)
                                    for i, b in enumerate(boxes)])
            context = context_maps(maps, self.context_grid).float()
            relation = self.relation(HeadInputs(feats, torch.cat(list(boxes)).float(), clip_index, len(boxes),
                                                context=context))
        return self.classifier(self.dropout(feats)), colours, relation

    def actor_features(self, clip: Tensor, boxes: Sequence[Tensor]) -> Tensor:
        maps = self.backbone(clip).maps
        return roi_actor_features(maps, boxes, tuple(clip.shape[3:]), self.roi_output_size)

    def forward(self, clip: Tensor, boxes: Sequence[Tensor]) -> Tensor:
        return self.classifier(self.dropout(self.actor_features(clip, boxes)))


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm in eval mode and stop its affine parameters from training."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def jitter_boxes(boxes: Tensor, amount: float, gen: torch.Generator) -> Tensor:
    """Shift each edge by up to ``amount`` x the box width/height (uniform), clipped to [0, 1]."""
    if amount <= 0 or len(boxes) == 0:
        return boxes
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    noise = (torch.rand(boxes.shape, generator=gen) * 2 - 1) * amount * wh
    out = (boxes + noise).clamp(0, 1)
    x1, x2 = torch.minimum(out[:, 0], out[:, 2]), torch.maximum(out[:, 0], out[:, 2])
    y1, y2 = torch.minimum(out[:, 1], out[:, 3]), torch.maximum(out[:, 1], out[:, 3])
    return torch.stack([x1, y1, x2, y2], dim=1)


def _flip(clip: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror a clip ``[T, H, W, 3]`` and its normalised boxes left-right."""
    return clip.flip(2), torch.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], dim=1)


@dataclass
class FinetuneResult:
    """Mean training loss per epoch (all epochs, resumed ones included) and the epochs run now."""

    history: list[float]
    epochs_run: int


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, epoch: int, step: int,
                    history: list[float], config: FinetuneConfig) -> None:
    """Write the resume state after ``epoch`` epochs / ``step`` steps (atomic: a kill never leaves half a file)."""
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "step": step,
             "history": history, "rng": torch.get_rng_state(), "config_hash": config.config_hash()}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def finetune_backbone(
    model: ActorClassifier,
    samples: Sequence[ActorSample],
    config: FinetuneConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    on_progress: ProgressFn | None = None,
) -> FinetuneResult:
    """Train ``model`` end to end on ``samples``; resume from ``checkpoint`` if it exists.

    Exact resume: the data order, flips and jitter of epoch ``e`` come from a generator seeded by
    ``(seed, e)``, and the global RNG (dropout) is restored from the checkpoint, so an interrupted
    and resumed run ends with the same weights as an uninterrupted one.
    ``on_progress(done, total)`` counts optimisation steps.
    """
    config = config or FinetuneConfig()
    device = torch.device(device)
    model.to(device)
    if config.frozen_bn:
        freeze_batchnorm(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    start_epoch, step, history = 0, 0, []
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state["config_hash"] != config.config_hash():
            raise ValueError(f"{ckpt}: checkpoint was written with different settings; use a new path")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, step, history = state["epoch"], state["step"], list(state["history"])
        torch.set_rng_state(state["rng"])
    dataset = ActorClipDataset(samples, config.num_frames, config.stride, config.short_side)
    per_epoch = -(-len(dataset) // config.batch_size)
    steps = WarmupSteps(opt, config.lr, config.warmup_steps, per_epoch * config.epochs, step=step,
                        on_progress=on_progress, cosine=config.schedule == "cosine")
    for epoch in range(start_epoch, config.epochs):
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=gen,
                            collate_fn=_collate, num_workers=config.num_workers)
        model.train()
        if config.frozen_bn:
            freeze_batchnorm(model)
        losses = []
        for clips, boxes, labels in loader:
            if config.hflip or config.box_jitter:
                clips = clips.clone()
                for i in range(len(boxes)):
                    if config.hflip and torch.rand((), generator=gen) < 0.5:
                        clips[i], boxes[i] = _flip(clips[i], boxes[i])
                    boxes[i] = jitter_boxes(boxes[i], config.box_jitter, gen)

            def loss_of() -> Tensor:
                logits, colours, relation = model.training_outputs(frames_to_clip(clips).to(device),
                                                                   [b.to(device) for b in boxes])
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(device))
                if relation is not None:
                    loss = loss + F.binary_cross_entropy_with_logits(relation, labels.to(device))
                if colours is not None and config.appearance_weight > 0:
                    target = appearance_targets(clips, boxes, config.appearance_grid).to(device)
                    loss = loss + config.appearance_weight * F.mse_loss(colours, target)
                return loss

            losses.append(steps(loss_of))
        history.append(float(np.mean(losses)) if losses else float("nan"))
        if ckpt is not None:
            save_checkpoint(ckpt, model, opt, epoch + 1, steps.step, history, config)
    model.eval()
    return FinetuneResult(history, config.epochs - start_epoch)


@torch.no_grad()
def predict_actors(
    model: ActorClassifier, samples: Sequence[ActorSample], config: FinetuneConfig, *,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """Sigmoid scores ``[N_i, K]`` for the boxes of each sample (evaluation; no flips, no jitter)."""
    device = torch.device(device)
    model.to(device).eval()
    dataset = ActorClipDataset(samples, config.num_frames, config.stride, config.short_side)
    loader = DataLoader(dataset, batch_size=config.batch_size, collate_fn=_collate, num_workers=config.num_workers)
    out: list[np.ndarray] = []
    for clips, boxes, _ in loader:
        scores = torch.sigmoid(model(frames_to_clip(clips).to(device), [b.to(device) for b in boxes])).cpu()
        out.extend(s.numpy() for s in scores.split([len(b) for b in boxes]))
    return out
