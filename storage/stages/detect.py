"""detect: person boxes at every manifest keyframe -> ``detections.parquet``.

Sources: ``groundtruth`` (the oracle setting papers report: every distinct annotated box, score 1,
with the AVA person ids), ``proposals`` (an AVA CSV with scores or an MMAction2 pickle), ``detector``
(a torchvision person detector from local weights, GPU). One unit of work per video writes
``parts/<video>.parquet``; finish concatenates the parts (schema: ``storage.tables.DETECTIONS_SCHEMA``,
t in annotation seconds, boxes normalised xyxy).
"""

from __future__ import annotations

from functools import lru_cache

from stad_core.ava import KeyframeDetections, KeyframeKey, read_ava_csv
from stad_core.detection import PersonDetector, groundtruth_boxes, imported_proposals
from stad_core.errors import StadError
from stad_core.stage_configs import DetectStageConfig
from storage.stages.base import Finished, Stage, StagePlan, VideoWork
from storage.stages.ingest import dataset_of, videos_of
from storage.tables import merge_detections, write_detections
from storage.uri import join, local_path
from storage.workspace import StageRef, Workspace, fingerprint_paths

NAME = "detect"
DETECTIONS = "detections.parquet"


def detections_uri(ref: StageRef) -> str:
    return ref.path(DETECTIONS)


def prepare(ws: Workspace, config: DetectStageConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ingest = upstream["ingest"]
    inputs = {"proposals": fingerprint_paths([config.proposals])} if config.source == "proposals" else {}
    if config.source == "detector" and config.detector.weights not in (None, "cache"):
        inputs["weights"] = fingerprint_paths([config.detector.weights])
    files = dataset_of(ingest)
    videos = tuple(
        VideoWork(v.video_id, {"path": v.path, "split": v.split, "keyframes": v.keyframes.tolist(),
                               "gt_csv": files.splits.get(v.split)})
        for v in videos_of(ingest, config.splits)
    )
    ref = ws.plan(NAME, config, upstream=[ingest], inputs=inputs)
    return StagePlan(ref, config, upstream, videos, shared={"config": config, "time_offset": files.time_offset},
                     gpu=config.source == "detector")


@lru_cache(maxsize=8)
def _groundtruth(path: str) -> dict[KeyframeKey, KeyframeDetections]:
    return groundtruth_boxes(read_ava_csv(path, kind="groundtruth", allow_boxless_rows=True))


@lru_cache(maxsize=2)
def _proposals(path: str, threshold: float, keep_top: bool, lenient: bool) -> dict[KeyframeKey, KeyframeDetections]:
    return imported_proposals(path, score_threshold=threshold, keep_top_box=keep_top, lenient=lenient)


def detect_video(*, video_id: str, stage_uri: str, device: str, config: DetectStageConfig, path: str, force: bool,
                 split: str, keyframes: list[float], time_offset: float, gt_csv: str | None) -> dict[str, int]:
    """Boxes of one video's keyframes from the configured source, written to ``parts/<video>.parquet``."""
    stamps = [int(round(t)) for t in keyframes]
    if config.source == "detector":
        detector = PersonDetector.from_config(config.detector, device=device)
        found = detector.detect_keyframes(path, video_id, [t - time_offset for t in stamps],
                                          batch_size=config.detector.batch_size, short_side=config.detector.short_side)
        # Detector keys are on the video clock; detections are stored on the annotation clock.
        dets = [KeyframeDetections(KeyframeKey(video_id, t), d.boxes, d.scores, d.source)
                for t, d in zip(stamps, found)]
    else:
        if config.source == "groundtruth":
            if gt_csv is None:
                raise StadError(f"{video_id}: split {split!r} has no ground-truth CSV for source=groundtruth")
            table = _groundtruth(gt_csv)
        else:
            table = _proposals(str(config.proposals), config.score_threshold, config.keep_top_box, config.lenient)
        dets = [table[k] for k in (KeyframeKey(video_id, t) for t in stamps) if k in table]
    rows = write_detections(_part(stage_uri, video_id), dets)
    return {"keyframes": len(stamps), "boxes": rows}


def _part(stage_uri: str, video_id: str) -> str:
    return str(local_path(join(stage_uri, "parts", f"{video_id}.parquet")))


def finish(plan: StagePlan, device: str) -> Finished:
    parts = [_part(plan.ref.uri, v.video_id) for v in plan.videos]
    merge_detections(parts, local_path(detections_uri(plan.ref)))
    return Finished()


STAGE = Stage(NAME, DetectStageConfig,
              "person boxes per keyframe (ground truth, proposals or a detector) -> detections.parquet",
              upstream=("ingest",), gpu=True, prepare=prepare, video=detect_video, finish=finish,
              default_config="configs/detect.yaml")
