"""Detect stage: person boxes at every manifest keyframe -> ``detections.parquet``.

Sources: ``groundtruth`` (the oracle setting papers report: every distinct annotated box, score 1),
``proposals`` (an AVA CSV with scores or an MMAction2 pickle), ``detector`` (a torchvision person
detector from local weights, GPU-declared). One task per video writes ``parts/<video>.parquet``; the
flow then concatenates the parts into ``detections.parquet`` with columns
``video_id, t, x1, y1, x2, y2, score, source, person_id`` (t in annotation seconds, boxes normalised
xyxy; ``person_id`` is null where the source has no identities -- proposals, detectors -- and the
AVA person id for ground truth, so extracted banks carry who is who). Files written before the
column existed read as having no ids.

Run alone: ``stad run detect -c configs/detect.yaml`` (uses the workspace's latest ingest output).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field, model_validator

from flows.ingest import annotation_files, videos_of
from flows.runtime import default_task_runner, make_video_task, map_videos, reuse_or_begin, summarise, work_inputs
from flows.workspace import StageRef, Workspace, fingerprint_paths, join, local_path
from stad_core.ava import KeyframeDetections, KeyframeKey, read_ava_csv
from stad_core.config import StageConfig
from stad_core.detection import DetectConfig, PersonDetector, groundtruth_boxes, imported_proposals
from stad_core.errors import StadError

STAGE = "detect"
DETECTIONS = "detections.parquet"
SCHEMA = pa.schema([
    ("video_id", pa.string()), ("t", pa.float64()), ("x1", pa.float32()), ("y1", pa.float32()),
    ("x2", pa.float32()), ("y2", pa.float32()), ("score", pa.float32()), ("source", pa.string()),
    ("person_id", pa.int64()),  # nullable: null = the source has no ids; -1 = this id is unknown
])


class DetectStageConfig(StageConfig):
    """Where the person boxes of every keyframe come from."""

    source: Literal["groundtruth", "proposals", "detector"] = Field(
        "groundtruth", description="groundtruth (oracle boxes), proposals (a file) or detector (a model)")
    proposals: str | None = Field(None, description="proposals file for source=proposals (CSV with scores or .pkl)")
    score_threshold: float = Field(0.0, ge=0.0, le=1.0, description="proposals: keep boxes scoring >= this")
    keep_top_box: bool = Field(True, description="proposals: keep each keyframe's best box below the threshold")
    detector: DetectConfig = DetectConfig()
    splits: tuple[str, ...] = Field(("train", "val"), description="manifest splits to detect on")

    @model_validator(mode="after")
    def _source_needs(self) -> DetectStageConfig:
        if self.source == "proposals" and not self.proposals:
            raise ValueError("source=proposals needs proposals: PATH")
        return self


def write_detections(path: Path, detections: Sequence[KeyframeDetections]) -> int:
    """One parquet row per box (sorted by time; a keyframe without boxes has no row).

    ``person_id`` holds each keyframe's ``person_ids``, or nulls for keyframes that have none.
    """
    items = sorted(detections, key=lambda d: (d.key.video_id, d.key.timestamp))
    n = [len(d) for d in items]
    boxes = np.concatenate([d.boxes for d in items]) if items else np.zeros((0, 4), np.float32)
    ids = np.concatenate([np.zeros(len(d), np.int64) if d.person_ids is None else d.person_ids for d in items]) \
        if items else np.zeros(0, np.int64)
    no_ids = np.concatenate([np.full(len(d), d.person_ids is None) for d in items]) if items else np.zeros(0, bool)
    table = pa.table({
        "video_id": np.repeat([d.key.video_id for d in items], n).astype(str) if items else np.zeros(0, str),
        "t": np.repeat([float(d.key.timestamp) for d in items], n).astype(np.float64),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
        "score": np.concatenate([d.scores for d in items]) if items else np.zeros(0, np.float32),
        "source": np.repeat([d.source for d in items], n).astype(str) if items else np.zeros(0, str),
        "person_id": pa.array(ids, pa.int64(), mask=no_ids),
    }, schema=SCHEMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # a killed task never leaves a half-written part
    return len(table)


def read_detections(path: str | Path) -> dict[str, list[KeyframeDetections]]:
    """``detections.parquet`` -> video id -> per-keyframe boxes (time order).

    A keyframe's ``person_ids`` are None when all its rows have a null ``person_id`` (or the file
    predates the column), else its ids with nulls read as -1.
    """
    table = pq.read_table(path, schema=SCHEMA)  # a column missing from an older file reads as nulls
    cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in SCHEMA.names if name != "person_id"}
    pid = table.column("person_id")
    has_id = pid.is_valid().to_numpy(zero_copy_only=False)
    ids = pc.fill_null(pid, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    boxes = np.stack([cols["x1"], cols["y1"], cols["x2"], cols["y2"]], axis=1).astype(np.float32)
    out: dict[str, list[KeyframeDetections]] = {}
    order = np.lexsort((cols["t"], cols["video_id"]))
    keys = list(zip(cols["video_id"][order].tolist(), cols["t"][order].tolist()))
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and keys[stop] == keys[start]:
            stop += 1
        rows = order[start:stop]
        vid, t = keys[start]
        out.setdefault(vid, []).append(KeyframeDetections(
            KeyframeKey(vid, int(round(t))), boxes[rows], cols["score"][rows], str(cols["source"][rows[0]]),
            ids[rows] if has_id[rows].any() else None))
        start = stop
    return out


def detections_uri(ref: StageRef) -> str:
    return join(ref.uri, DETECTIONS)


@lru_cache(maxsize=8)
def _groundtruth(path: str) -> dict[KeyframeKey, KeyframeDetections]:
    return groundtruth_boxes(read_ava_csv(path, kind="groundtruth", allow_boxless_rows=True))


@lru_cache(maxsize=2)
def _proposals(path: str, threshold: float, keep_top: bool) -> dict[KeyframeKey, KeyframeDetections]:
    return imported_proposals(path, score_threshold=threshold, keep_top_box=keep_top)


def detect_video(*, video_id: str, stage_uri: str, device: str, config: DetectStageConfig, path: str,
                 split: str, keyframes: list[float], time_offset: float, gt_csv: str | None) -> dict[str, int]:
    """Boxes of one video's keyframes from the configured source, written to ``parts/<video>.parquet``."""
    stamps = [int(round(t)) for t in keyframes]
    if config.source == "detector":
        detector = PersonDetector.from_config(config.detector, device=device)
        found = detector.detect_keyframes(path, video_id, [t - time_offset for t in stamps],
                                          batch_size=config.detector.batch_size, short_side=config.detector.short_side)
        # Detector keys are on the video clock; detections are stored on the annotation clock.
        dets = [KeyframeDetections(KeyframeKey(video_id, t), d.boxes, d.scores, d.source) for t, d in zip(stamps, found)]
    else:
        if config.source == "groundtruth":
            if gt_csv is None:
                raise StadError(f"{video_id}: split {split!r} has no ground-truth CSV for source=groundtruth")
            table = _groundtruth(gt_csv)
        else:
            table = _proposals(str(config.proposals), config.score_threshold, config.keep_top_box)
        dets = [table[k] for k in (KeyframeKey(video_id, t) for t in stamps) if k in table]
    rows = write_detections(local_path(join(stage_uri, "parts", f"{video_id}.parquet")), dets)
    return {"keyframes": len(stamps), "boxes": rows}


detect_task = make_video_task(detect_video, name="detect-video", gpu=True)


@task(name="merge-detections", cache_policy=NO_CACHE, persist_result=False)
def merge_task(stage_uri: str, video_ids: list[str]) -> int:
    parts = [pq.read_table(local_path(join(stage_uri, "parts", f"{v}.parquet")), schema=SCHEMA) for v in video_ids]
    table = pa.concat_tables(parts) if parts else SCHEMA.empty_table()
    out = local_path(join(stage_uri, DETECTIONS))
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)
    return len(table)


@flow(name="detect", log_prints=True, task_runner=default_task_runner())
def detect_flow(
    config: DetectStageConfig = DetectStageConfig(),
    workspace: str = "workspace",
    force: bool = False,
    ingest: StageRef | None = None,
) -> StageRef:
    """Person boxes at every keyframe of the manifest's ``splits`` (one task per video)."""
    ws = Workspace(workspace)
    ingest = ingest or ws.require_latest("ingest", STAGE)
    inputs = {"proposals": fingerprint_paths([config.proposals])} if config.source == "proposals" else {}
    if config.source == "detector" and config.detector.weights not in (None, "cache"):
        inputs["weights"] = fingerprint_paths([config.detector.weights])
    planned = ws.plan(STAGE, config, upstream=[ingest], inputs=inputs)
    done = reuse_or_begin(ws, planned, force=force)
    if done is not None:
        return done
    files = annotation_files(ingest)
    videos = videos_of(ingest, config.splits)
    results = map_videos(
        detect_task, [v.video_id for v in videos], stage=STAGE, stage_uri=planned.uri,
        config_hash=planned.config_hash, code_version=planned.code_version, inputs=work_inputs(planned),
        force=force, gpu=config.source == "detector",
        params={"config": config, "time_offset": files.time_offset},
        per_video={v.video_id: {"path": v.path, "split": v.split, "keyframes": v.keyframes.tolist(),
                                "gt_csv": files.splits.get(v.split)} for v in videos},
    )
    merge_task(planned.uri, [v.video_id for v in videos])
    return ws.commit(replace(planned, counts=summarise(results)))


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main(STAGE)
