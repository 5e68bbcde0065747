"""temporal_extract: videos -> ``fine.zarr``, a fine-feature bank (one row per feature step; the
backbone's depths and the coarse frames side by side, see stad_core.temporal.fine_bank).

One unit of work per video, resumable on its own: a video counts as done only when its marker
carries this run's work key and the bank lists it complete. The config is
``stad_core.temporal.features.FineFeatureConfig`` (backbone by name, depths, step, dtype).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

import numpy as np

from stad_core.banks import BankSpec
from stad_core.temporal.features import FineFeatureConfig, build_fine_backbone, depth_dims, fine_features
from stad_core.temporal.fine_bank import fine_spec, to_rows
from stad_core.video import VideoReader
from storage import open_bank
from storage.stages.base import Finished, Stage, StagePlan, VideoWork, model_slot
from storage.stages.temporal_ingest import entries_of
from storage.workspace import StageRef, Workspace

NAME = "temporal_extract"
FINE = "fine.zarr"


def bank_uri(ref: StageRef) -> str:
    return ref.path(FINE)


@lru_cache(maxsize=2)
def _backbone(config_json: str) -> Any:
    return build_fine_backbone(FineFeatureConfig.model_validate_json(config_json))


def _spec(config: FineFeatureConfig, code_version: str) -> BankSpec:
    model = _backbone(config.model_dump_json())
    dims = depth_dims(model, config)
    knobs = json.dumps(config.backbone_knobs, sort_keys=True)
    weights = hashlib.sha256(config.weights.encode()).hexdigest() if config.weights else f"random-init:{config.init_seed}"
    return fine_spec(dims, dtype=config.dtype, backbone=f"{config.backbone};{knobs}", checkpoint_sha256=weights,
                     clip_frames=config.clip_frames, step=config.step, code_version=code_version)


def prepare(ws: Workspace, config: FineFeatureConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ingest = upstream["temporal_ingest"]
    ref = ws.plan(NAME, config, upstream=[ingest])
    videos = tuple(VideoWork(e.video_id, {"path": e.path, "fps": e.fps}) for e in entries_of(ingest))
    return StagePlan(ref, config, upstream, videos, shared={"config": config, "spec": _spec(config, ref.code_version)})


def start(plan: StagePlan, force: bool) -> None:
    open_bank(bank_uri(plan.ref), "a", plan.shared["spec"])  # created once, before any video


def extract_video(*, video_id: str, stage_uri: str, device: str, config: FineFeatureConfig, spec: BankSpec,
                  path: str, fps: float, force: bool = False) -> dict[str, int]:
    bank = open_bank(f"{stage_uri.rstrip('/')}/{FINE}", "a", spec)
    if bank.is_complete(video_id) and not force:
        return {"steps": 0}
    with VideoReader(path, threads=1) as reader:
        frames = np.stack([rgb for _, rgb in reader.iter_frames(short_side=config.short_side)])
    with model_slot(device):
        feats = fine_features(frames, _backbone(config.model_dump_json()), config)
    rows = to_rows(feats, spec, fps)
    bank.write_video(video_id, rows, meta={"frames": int(len(frames)), "fps": float(fps)})
    return {"steps": len(rows)}


def bank_complete(*, video_id: str, stage_uri: str, **_: Any) -> bool:
    return open_bank(f"{stage_uri.rstrip('/')}/{FINE}", "r").is_complete(video_id)


def finish(plan: StagePlan, device: str) -> Finished:
    return Finished({"feature_dim": plan.shared["spec"].feature_dim})


STAGE = Stage(NAME, FineFeatureConfig, "videos + backbone -> fine-feature bank (a row per feature step, zarr)",
              upstream=("temporal_ingest",), gpu=True, prepare=prepare, start=start, video=extract_video,
              video_complete=bank_complete, finish=finish, default_config="configs/temporal_extract.yaml")
