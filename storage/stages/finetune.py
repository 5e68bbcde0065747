"""finetune: the video backbone (and optionally a person detector) trained on the train split.

Outputs ``backbone.pt`` + ``backbone.json`` (``storage.exports``: what extract builds its backbone
from) and, with ``detector`` set, ``detector.pt``. Fine-tuning checkpoints every epoch
(``finetune.ckpt``) and resumes from it exactly after a crash; with ``train: null`` the backbone is
only built (random or ``weights``) and exported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stad_core.ava import read_ava_csv
from stad_core.detection import (
    DetectorTrainConfig,
    build_detector,
    finetune_detector,
    groundtruth_boxes,
    keyframe_samples,
    save_detector,
)
from stad_core.finetune import ActorClassifier, actor_samples, finetune_backbone
from stad_core.models.actor_features import appearance_dim
from stad_core.models import load_backbone_checkpoint
from stad_core.progress import ProgressFn
from stad_core.stage_configs import FinetuneStageConfig
from storage.exports import build_configured_backbone, save_backbone
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.ingest import dataset_of, videos_of
from storage.stages.progress import stage_progress
from storage.stages.train import load_dataset
from storage.uri import local_path
from storage.workspace import StageRef, Workspace, fingerprint_paths

NAME = "finetune"
DETECTOR = "detector.pt"
CHECKPOINT = "finetune.ckpt"


def prepare(ws: Workspace, config: FinetuneStageConfig, upstream: dict[str, StageRef]) -> StagePlan:
    inputs = {"weights": fingerprint_paths([config.weights])} if config.weights else {}
    ref = ws.plan(NAME, config, upstream=[upstream["ingest"]], inputs=inputs)
    return StagePlan(ref, config, upstream)


def start(plan: StagePlan, force: bool) -> None:
    if force:  # a forced run starts over instead of resuming the previous attempt's checkpoint
        (local_path(plan.ref.uri) / CHECKPOINT).unlink(missing_ok=True)


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, FinetuneStageConfig)
    ingest = plan.upstream["ingest"]
    out = local_path(plan.ref.uri)
    data = load_dataset(ingest, NAME)
    labelmap = data.labelmap
    torch.manual_seed(config.init_seed)
    backbone = build_configured_backbone(config.backbone, config.knobs())
    if config.weights and config.backbone.startswith(("slowfast", "slowonly")):
        load_backbone_checkpoint(backbone, config.weights)
    counts: dict[str, int] = {"clips": 0, "epochs": 0}
    if config.train is not None:
        table = data.trainable("train")  # excluded keyframes are in the banks, never trained on
        train_videos = videos_of(ingest, ["train"])
        if config.first_videos is not None:  # a fixed backbone budget however many videos the heads get
            first = {v.video_id for v in videos_of(ingest)[: config.first_videos]}
            train_videos = [v for v in train_videos if v.video_id in first]
        samples = actor_samples(table, {v.video_id: v.path for v in train_videos}, list(labelmap.ids))
        if config.max_clips is not None and len(samples) > config.max_clips:
            pick = np.linspace(0, len(samples) - 1, config.max_clips).round().astype(int)
            samples = [samples[i] for i in pick]
        colours = appearance_dim(config.train.appearance_grid) if config.train.appearance_weight > 0 else 0
        model = ActorClassifier(backbone, num_classes=len(labelmap.ids), roi_output_size=config.train.roi_output_size,
                                dropout=config.train.dropout, appearance=colours, relation=config.train.relation_dim)
        result = finetune_backbone(model, samples, config.train, device=device, checkpoint=out / CHECKPOINT,
                                   on_progress=stage_progress(NAME))
        backbone = model.backbone.cpu()
        counts = {"clips": len(samples), "epochs": len(result.history)}
    info = save_backbone(plan.ref.uri, backbone, config.backbone, config.knobs())
    if config.detector is not None:
        counts["detector_images"] = _finetune_detector(config.detector, out, ingest, device)
    # The weights' hash identifies what extract reads (bank specs record it as checkpoint_sha256).
    return Finished(counts, inputs={"backbone_sha256": info["sha256"]})


def _finetune_detector(config: DetectorTrainConfig, out: Path, ingest: StageRef, device: str) -> int:
    return train_detector(ingest, out / DETECTOR, config, device=device,
                          on_progress=stage_progress(NAME + ":detector"))


def train_detector(ingest: StageRef, path: Path, config: DetectorTrainConfig, *, max_images: int | None = None,
                   device: str = "cpu", on_progress: ProgressFn | None = None) -> int:
    """Fine-tune ``tiny_fasterrcnn`` on the train split's ground-truth boxes (``max_images``: an even
    subset of the keyframes) and save it at ``path``; returns the keyframes it saw."""
    boxes = groundtruth_boxes(read_ava_csv(dataset_of(ingest).groundtruth("train"), kind="groundtruth"))
    keys = sorted(boxes)
    if max_images is not None and len(keys) > max_images:
        keys = [keys[i] for i in np.linspace(0, len(keys) - 1, max_images).round().astype(int)]
    samples = []
    for video in videos_of(ingest, ["train"]):
        samples += keyframe_samples(video.path, [boxes[k] for k in keys if k.video_id == video.video_id])
    torch.manual_seed(config.seed)
    model = build_detector("tiny_fasterrcnn")
    finetune_detector(model, samples, config, device=device, on_progress=on_progress)
    save_detector(path, model.cpu(), "tiny_fasterrcnn")
    return len(samples)


STAGE = Stage(NAME, FinetuneStageConfig,
              "fine-tune the video backbone (and optionally a person detector) on the train split",
              upstream=("ingest",), gpu=True, prepare=prepare, start=start, finish=finish,
              default_config="configs/finetune.yaml")
