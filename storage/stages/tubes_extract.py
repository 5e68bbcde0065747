"""tubes_extract: the extract stage on a tube dataset's frame keyframes (fractional times).

Identical to ``extract`` (same config, banks, specs, resume) except that it reads ``tubes_detect``'s
table keeping each keyframe's fractional time: ``storage.tables.read_detections`` keys keyframes by
whole seconds (AVA), which would fold a second's frames into one keyframe. Once that reader keys
fractional times (``KeyframeKey.at``), ``extract`` itself serves tube datasets and this stage can go.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stad_core.ava import KeyframeDetections, KeyframeKey
from stad_core.errors import StadError
from stad_core.extract import ExtractConfig, VideoJob, extract_features
from storage import open_bank
from storage.exports import cached_backbone
from storage.stages import extract as _extract
from storage.stages.base import Stage, StagePlan, VideoWork, model_slot
from storage.stages.detect import detections_uri
from storage.stages.ingest import dataset_of, videos_of
from storage.tables import DETECTIONS_SCHEMA
from storage.uri import local_path
from storage.workspace import StageRef, Workspace

NAME = "tubes_extract"


def read_frame_detections(path: str) -> dict[str, list[KeyframeDetections]]:
    """A detections table -> video id -> per-keyframe boxes in time order, keys at fractional times."""
    table = pq.read_table(path, schema=DETECTIONS_SCHEMA)
    video = table.column("video_id").to_numpy(zero_copy_only=False)
    t = table.column("t").to_numpy()
    boxes = np.stack([table.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2")], axis=1).astype(np.float32)
    scores = table.column("score").to_numpy()
    source = table.column("source").to_numpy(zero_copy_only=False)
    has_id = table.column("person_id").is_valid().to_numpy(zero_copy_only=False)
    ids = pc.fill_null(table.column("person_id"), -1).to_numpy().astype(np.int64)
    order = np.lexsort((np.round(t, 3), video))
    out: dict[str, list[KeyframeDetections]] = {}
    start = 0
    while start < len(order):
        stop = start + 1
        key = (video[order[start]], round(float(t[order[start]]), 3))
        while stop < len(order) and (video[order[stop]], round(float(t[order[stop]]), 3)) == key:
            stop += 1
        rows = order[start:stop]
        out.setdefault(str(key[0]), []).append(KeyframeDetections(
            KeyframeKey.at(str(key[0]), key[1]), boxes[rows], scores[rows], str(source[rows[0]]),
            ids[rows] if has_id[rows].any() else None))
        start = stop
    return out


@lru_cache(maxsize=2)
def _cached(path: str, mtime_ns: int) -> dict[str, list[KeyframeDetections]]:
    return read_frame_detections(path)


def _detections(uri: str) -> dict[str, list[KeyframeDetections]]:
    path = local_path(uri)
    return _cached(str(path), path.stat().st_mtime_ns)


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    return {"ingest": given.get("ingest") or ws.require_latest("tubes_ingest", NAME),
            "detect": given.get("detect") or ws.require_latest("tubes_detect", NAME),
            "finetune": given.get("finetune") or ws.require_latest("finetune", NAME)}


def prepare(ws: Workspace, config: ExtractConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ingest, detect, finetune = upstream["ingest"], upstream["detect"], upstream["finetune"]
    if detect.stage != "tubes_detect":
        raise StadError(f"tubes_extract reads a tubes_detect output, got a {detect.stage} one")
    ref = ws.plan(NAME, config, upstream=[ingest, detect, finetune])
    time_offset = float(dataset_of(ingest).time_offset)
    dets = _detections(detections_uri(detect))
    videos = tuple(VideoWork(v.video_id, {"path": v.path, "time_offset": time_offset})
                   for v in videos_of(ingest) if v.video_id in dets)
    source = next((d.source for v in videos for d in dets[v.video_id]), "none")
    specs = _extract.bank_specs(config, finetune, source, ref.code_version)
    return StagePlan(ref, config, upstream, videos, shared={
        "config": config, "finetune_uri": finetune.uri, "detections": detections_uri(detect), "specs": specs})


def extract_video(*, video_id: str, stage_uri: str, device: str, config: ExtractConfig, finetune_uri: str,
                  detections: str, path: str, specs: dict[str, Any], force: bool = False,
                  time_offset: float = 0.0) -> dict[str, int]:
    banks = {kind: open_bank(f"{stage_uri.rstrip('/')}/{_extract._FILES[kind]}", "a", spec) for kind, spec in specs.items()}
    job = VideoJob(video_id, path, _detections(detections).get(video_id, []), time_offset=time_offset)
    with model_slot(device):
        summary = extract_features([job], cached_backbone(finetune_uri), banks["long_term"], config,
                                   context_writer=banks.get("context"), device=device, force=force)
    return {"rows": summary.rows, "clips": summary.clips}


STAGE = Stage(NAME, ExtractConfig, "extract on a tube dataset's frame keyframes -> long-term and context banks (zarr)",
              upstream=("ingest", "detect", "finetune"), gpu=True, prepare=prepare, resolve=resolve, start=_extract.start,
              video=extract_video, video_complete=_extract.bank_complete, finish=_extract.finish,
              default_config="configs/extract.yaml")
