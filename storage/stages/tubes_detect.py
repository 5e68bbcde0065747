"""tubes_detect: person boxes at every keyframe of a ``tubes_ingest`` output -> ``detections.parquet``.

The detect stage's output layout (``storage.tables.DETECTIONS_SCHEMA``), so extract reads it as its
``detect`` upstream; unlike detect, keyframes keep their fractional times (frames at the dataset's rate,
``(frame - 1) / fps`` seconds). Config: ``DetectStageConfig`` with source ``groundtruth`` (every
annotated box, score 1, the actor/tube id as person id) or ``detector`` (a torchvision person detector).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from stad_core.ava import KeyframeDetections, KeyframeKey, read_ava_csv
from stad_core.detection import PersonDetector
from stad_core.errors import StadError
from stad_core.stage_configs import DetectStageConfig
from storage.stages.base import Finished, Stage, StagePlan, VideoWork
from storage.stages.detect import DETECTIONS, _part
from storage.stages.ingest import dataset_of, videos_of
from storage.tables import merge_detections, write_detections
from storage.uri import local_path
from storage.workspace import StageRef, Workspace, fingerprint_paths

NAME = "tubes_detect"


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    return {"ingest": given.get("ingest") or ws.require_latest("tubes_ingest", NAME)}


def prepare(ws: Workspace, config: DetectStageConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ingest = upstream["ingest"]
    if ingest.stage != "tubes_ingest":
        raise StadError(f"tubes_detect reads a tubes_ingest output, got a {ingest.stage} one (use detect there)")
    if config.source == "proposals":
        raise StadError("tubes_detect: source=proposals is not supported (proposal files key whole seconds)")
    inputs = {}
    if config.source == "detector" and config.detector.weights not in (None, "cache"):
        inputs["weights"] = fingerprint_paths([config.detector.weights])
    files = dataset_of(ingest)
    videos = tuple(VideoWork(v.video_id, {"path": v.path, "split": v.split, "keyframes": v.keyframes.tolist(),
                                          "gt_csv": files.splits.get(v.split)})
                   for v in videos_of(ingest, config.splits))
    ref = ws.plan(NAME, config, upstream=[ingest], inputs=inputs)
    return StagePlan(ref, config, upstream, videos, shared={"config": config, "time_offset": files.time_offset},
                     gpu=config.source == "detector")


@lru_cache(maxsize=4)
def _groundtruth(path: str) -> dict[KeyframeKey, KeyframeDetections]:
    """Distinct boxes per (fractional) keyframe of a ground-truth CSV, score 1, with person ids."""
    table = read_ava_csv(path, kind="groundtruth", allow_boxless_rows=True)
    kv, kt, inverse = table.keyframe_groups()
    out: dict[KeyframeKey, KeyframeDetections] = {}
    for k in range(len(kv)):
        rows = np.flatnonzero(inverse == k)
        boxes, first = np.unique(table.boxes[rows], axis=0, return_index=True)
        order = np.argsort(first)
        key = KeyframeKey.at(str(table.videos[kv[k]]), float(kt[k]))
        out[key] = KeyframeDetections(key, boxes[order], np.ones(len(order)), "groundtruth",
                                      np.asarray(table.person_id[rows[first[order]]], dtype=np.int64))
    return out


def detect_video(*, video_id: str, stage_uri: str, device: str, config: DetectStageConfig, path: str, force: bool,
                 split: str, keyframes: list[float], time_offset: float, gt_csv: str | None) -> dict[str, int]:
    keys = [KeyframeKey.at(video_id, t) for t in keyframes]
    if config.source == "detector":
        detector = PersonDetector.from_config(config.detector, device=device)
        found = detector.detect_keyframes(path, video_id, [float(k.timestamp) - time_offset for k in keys],
                                          batch_size=config.detector.batch_size, short_side=config.detector.short_side)
        dets = [KeyframeDetections(k, d.boxes, d.scores, d.source) for k, d in zip(keys, found)]
    else:
        if gt_csv is None:
            raise StadError(f"{video_id}: split {split!r} has no ground-truth CSV for source=groundtruth")
        table = _groundtruth(gt_csv)
        dets = [table[k] for k in keys if k in table]
    rows = write_detections(_part(stage_uri, video_id), dets)
    return {"keyframes": len(keys), "boxes": rows}


def finish(plan: StagePlan, device: str) -> Finished:
    merge_detections([_part(plan.ref.uri, v.video_id) for v in plan.videos], local_path(plan.ref.path(DETECTIONS)))
    return Finished()


STAGE = Stage(NAME, DetectStageConfig,
              "person boxes at every frame keyframe of a tube dataset (ground truth or a detector) -> detections.parquet",
              upstream=("ingest",), gpu=True, prepare=prepare, resolve=resolve, video=detect_video, finish=finish,
              default_config="configs/tubes_detect.yaml")
