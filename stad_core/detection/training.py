"""Fine-tune a person detector on a dataset's ground-truth person boxes.

Uses torchvision's training-mode loss dict (RPN objectness + box regression, RoI classification +
box regression). Person-only layout: label 1 = person, 0 = background.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from stad_core.atomic import atomic_write
from stad_core.ava.proposals import KeyframeDetections
from stad_core.config import StageConfig
from stad_core.detection.detectors import PERSON_LABEL
from stad_core.progress import ProgressFn
from stad_core.train.schedule import WarmupSteps


@dataclass
class DetectionSample:
    """One training image: uint8 ``[H, W, 3]`` and its person boxes ``[N, 4]`` normalised xyxy."""

    image: Tensor
    boxes: np.ndarray


def keyframe_samples(
    video_path: str | Path, detections: Iterable[KeyframeDetections], *, short_side: int | None = None
) -> list[DetectionSample]:
    """Decode the keyframes of one video that ``detections`` (e.g. ground truth) name, with their boxes."""
    from stad_core.video import decode_frames_at

    items = list(detections)
    if not items:
        return []
    frames = decode_frames_at(video_path, [float(d.key.timestamp) for d in items], short_side=short_side)
    return [DetectionSample(frame, d.boxes) for frame, d in zip(frames, items, strict=True)]


class DetectorTrainConfig(StageConfig):
    """Detector fine-tuning settings (SGD with linear warm-up, then a constant rate)."""

    epochs: int = Field(12, ge=1)
    batch_size: int = Field(4, ge=1)
    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_iters: int = Field(50, ge=0)
    hflip: bool = Field(True, description="random horizontal flips")
    seed: int = 0


def to_person_only(model: FasterRCNN) -> FasterRCNN:
    """Replace a (COCO) Faster R-CNN box predictor by a 2-class (background, person) one."""
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, 2)
    return model


def _target(sample: DetectionSample, flip: bool) -> tuple[Tensor, dict[str, Tensor]]:
    img = sample.image.permute(2, 0, 1).float().div_(255.0)  # [3, H, W]
    h, w = img.shape[1:]
    boxes = torch.as_tensor(sample.boxes, dtype=torch.float32).reshape(-1, 4) * torch.tensor([w, h, w, h])
    if flip:
        img = img.flip(-1)
        boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], dim=1)
    labels = torch.full((len(boxes),), PERSON_LABEL, dtype=torch.int64)
    return img, {"boxes": boxes, "labels": labels}


def finetune_detector(
    model: nn.Module,
    samples: Sequence[DetectionSample],
    config: DetectorTrainConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    on_progress: ProgressFn | None = None,
) -> list[float]:
    """Train ``model`` (a torchvision detection model in the person-only layout) in place.

    Returns the mean total loss of each epoch. ``on_progress(done, total)`` counts iterations.
    """
    config = config or DetectorTrainConfig()
    if not samples:
        raise ValueError("no training samples")
    gen = torch.Generator().manual_seed(config.seed)
    device = torch.device(device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    per_epoch = -(-len(samples) // config.batch_size)
    steps = WarmupSteps(opt, config.lr, config.warmup_iters, per_epoch * config.epochs, on_progress=on_progress)
    history: list[float] = []
    for _ in range(config.epochs):
        order = torch.randperm(len(samples), generator=gen).tolist()
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = [samples[i] for i in order[start:start + config.batch_size]]
            flips = (torch.rand(len(batch), generator=gen) < 0.5).tolist() if config.hflip else [False] * len(batch)
            images, targets = zip(*(_target(s, f) for s, f in zip(batch, flips, strict=True)), strict=True)
            images = [im.to(device) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            losses.append(steps(lambda: sum(model(images, targets).values())))
        history.append(float(np.mean(losses)))
    model.eval()
    return history


def save_detector(path: str | Path, model: nn.Module, name: str, num_classes: int = 2) -> Path:
    """Save a fine-tuned detector (``{"model": state_dict, "name", "num_classes"}``) for ``build_detector``."""
    state = {"model": model.state_dict(), "name": name, "num_classes": num_classes}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))  # a killed run never leaves half a file
