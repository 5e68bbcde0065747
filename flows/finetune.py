"""Finetune stage: the video backbone (and optionally a person detector) trained on the train split.

Outputs: ``backbone.pt`` (the backbone's state dict) + ``backbone.json`` (architecture, sha256) —
what extract builds its backbone from — and, with ``detector`` set, ``detector.pt``. Fine-tuning
checkpoints every epoch (``finetune.ckpt``) and resumes from it exactly after a crash. With
``train: null`` the backbone is only built (random or ``weights``) and exported.

Run alone: ``stad run finetune -c configs/finetune.yaml train.epochs=2``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from flows.gpu import gpu_device, submit_task
from flows.ingest import annotation_files, videos_of
from flows.runtime import default_task_runner, reuse_or_begin, stage_progress
from flows.workspace import StageRef, Workspace, fingerprint_paths, join, local_path, read_text
from stad_core.ava import read_ava_csv, read_labelmap
from stad_core.config import StageConfig
from stad_core.detection import DetectorTrainConfig, build_detector, finetune_detector, groundtruth_boxes, keyframe_samples, save_detector
from stad_core.finetune import ActorClassifier, FinetuneConfig, actor_samples, finetune_backbone
from stad_core.models import VideoBackbone, build_backbone, load_backbone_checkpoint
from stad_core.models.backbones import BackboneName

STAGE = "finetune"
BACKBONE = "backbone.pt"
BACKBONE_INFO = "backbone.json"
DETECTOR = "detector.pt"


class FinetuneStageConfig(StageConfig):
    """Backbone architecture + optional pretrained weights + fine-tuning (+ optional detector)."""

    backbone: BackboneName = "slowfast_r50"
    family: Literal["pyslowfast", "mmaction2"] = Field("pyslowfast", description="SlowFast/SlowOnly conventions")
    width: int = Field(64, ge=1, description="SlowFast/SlowOnly slow stem width (64 = the published R50)")
    blocks: tuple[int, int, int, int] | None = Field(None, description="blocks per stage (null: the depth's)")
    alpha: int = Field(4, ge=1, description="SlowFast frame-rate ratio")
    weights: str | None = Field(None, description="pretrained checkpoint (PySlowFast/MMAction2/torchvision) to start from")
    train: FinetuneConfig | None = FinetuneConfig()
    max_clips: int | None = Field(None, ge=1, description="fine-tune on an even subset of this many train keyframes")
    init_seed: int = Field(0, description="seed of the random initialisation")
    detector: DetectorTrainConfig | None = Field(None, description="also fine-tune tiny_fasterrcnn on the train GT boxes")

    def knobs(self) -> dict[str, Any]:
        if self.backbone.startswith(("slowfast", "slowonly")):
            knobs: dict[str, Any] = {"family": self.family, "width": self.width}
            if self.blocks is not None:
                knobs["blocks"] = self.blocks
            if self.backbone.startswith("slowfast"):
                knobs["alpha"] = self.alpha
            return knobs
        return {"weights_path": self.weights} if self.weights else {}


def build_configured_backbone(name: str, knobs: dict[str, Any]) -> VideoBackbone:
    knobs = {k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()}
    return build_backbone(name, **knobs)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@task(name="finetune-backbone", cache_policy=NO_CACHE, persist_result=False, tags=["gpu"])
def finetune_task(config: FinetuneStageConfig, stage_uri: str, ingest: StageRef) -> dict[str, int]:
    out = local_path(stage_uri)
    files = annotation_files(ingest)
    labelmap = read_labelmap(files.require_labelmap(STAGE))
    torch.manual_seed(config.init_seed)
    backbone = build_configured_backbone(config.backbone, config.knobs())
    if config.weights and config.backbone.startswith(("slowfast", "slowonly")):
        load_backbone_checkpoint(backbone, config.weights)
    counts: dict[str, int] = {"clips": 0, "epochs": 0}
    if config.train is not None:
        table = read_ava_csv(files.groundtruth("train"), kind="groundtruth")
        paths = {v.video_id: v.path for v in videos_of(ingest, ["train"])}
        samples = actor_samples(table, paths, list(labelmap.ids))
        if config.max_clips is not None and len(samples) > config.max_clips:
            pick = np.linspace(0, len(samples) - 1, config.max_clips).round().astype(int)
            samples = [samples[i] for i in pick]
        model = ActorClassifier(backbone, num_classes=len(labelmap.ids), roi_output_size=config.train.roi_output_size,
                                dropout=config.train.dropout)
        with gpu_device() as lease:
            result = finetune_backbone(model, samples, config.train, device=lease.device,
                                       checkpoint=out / "finetune.ckpt", on_progress=stage_progress(STAGE))
        backbone = model.backbone.cpu()
        counts = {"clips": len(samples), "epochs": len(result.history)}
    tmp = out / (BACKBONE + ".tmp")
    torch.save(backbone.state_dict(), tmp)
    tmp.replace(out / BACKBONE)
    info = {"backbone": config.backbone, "knobs": config.knobs(), "sha256": _sha256(out / BACKBONE),
            "out_channels": int(backbone.out_channels)}
    (out / BACKBONE_INFO).write_text(json.dumps(info, indent=1))
    if config.detector is not None:
        counts["detector_images"] = _finetune_detector(config.detector, out, ingest)
    return counts


def _finetune_detector(config: DetectorTrainConfig, out: Path, ingest: StageRef) -> int:
    files = annotation_files(ingest)
    boxes = groundtruth_boxes(read_ava_csv(files.groundtruth("train"), kind="groundtruth"))
    samples = []
    for video in videos_of(ingest, ["train"]):
        samples += keyframe_samples(video.path, [d for k, d in sorted(boxes.items()) if k.video_id == video.video_id])
    torch.manual_seed(config.seed)
    model = build_detector("tiny_fasterrcnn")
    with gpu_device() as lease:
        finetune_detector(model, samples, config, device=lease.device, on_progress=stage_progress(STAGE + ":detector"))
    save_detector(out / DETECTOR, model.cpu(), "tiny_fasterrcnn")
    return len(samples)


@flow(name="finetune", log_prints=True, task_runner=default_task_runner())
def finetune_flow(
    config: FinetuneStageConfig = FinetuneStageConfig(),
    workspace: str = "workspace",
    force: bool = False,
    ingest: StageRef | None = None,
) -> StageRef:
    """Fine-tune the backbone on the train split's keyframes (GT boxes) and export it."""
    ws = Workspace(workspace)
    ingest = ingest or ws.require_latest("ingest", STAGE)
    inputs = {"weights": fingerprint_paths([config.weights])} if config.weights else {}
    planned = ws.plan(STAGE, config, upstream=[ingest], inputs=inputs)
    done = reuse_or_begin(ws, planned, force=force)
    if done is not None:
        return done
    if force:  # a forced run starts over instead of resuming the previous attempt's checkpoint
        (local_path(planned.uri) / "finetune.ckpt").unlink(missing_ok=True)
    counts = submit_task(finetune_task, gpu=True, config=config, stage_uri=planned.uri, ingest=ingest).result()
    info = backbone_info(planned)
    # The weights' hash identifies what extract reads (bank specs record it as checkpoint_sha256).
    return ws.commit(replace(planned, counts=counts, inputs={**planned.inputs, "backbone_sha256": info["sha256"]}))


def backbone_info_at(uri: str) -> dict[str, Any]:
    return json.loads(read_text(join(uri, BACKBONE_INFO)))


def backbone_info(ref: StageRef) -> dict[str, Any]:
    """Architecture (name, knobs), output channels and sha256 of an exported backbone."""
    return backbone_info_at(ref.uri)


def load_backbone(uri: str) -> tuple[VideoBackbone, dict[str, Any]]:
    """The backbone exported in the finetune output at ``uri`` (eval mode, CPU) and its info."""
    info = backbone_info_at(uri)
    backbone = build_configured_backbone(info["backbone"], info["knobs"])
    backbone.load_state_dict(torch.load(local_path(join(uri, BACKBONE)), map_location="cpu", weights_only=True))
    return backbone.eval(), info


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main(STAGE)
