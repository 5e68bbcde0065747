"""temporal_ingest: videos + Charades CSVs + class list -> ``manifest.parquet`` (one row per video:
split, path, length, fps, frames, activities, per-frame labels), ``rejects.parquet`` (videos named
in a CSV without a readable file) and ``dataset.json`` (the annotation files, workspace-relative).

Run alone with no dataset set, it ingests the workspace's latest ``temporal_synth`` output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stad_core.errors import StadError
from stad_core.temporal.annotations import TemporalVideo, read_charades_classes, read_charades_csv
from stad_core.temporal.configs import TemporalIngestConfig
from stad_core.temporal.labels import labels_at
from stad_core.video import VideoError, probe
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.progress import stage_progress
from storage.stages.temporal_synth import dataset_files
from storage.tables import write_parquet
from storage.uri import local_path
from storage.workspace import StageRef, Workspace, fingerprint_paths, read_text, write_text

NAME = "temporal_ingest"
MANIFEST, REJECTS, DATASET = "manifest.parquet", "rejects.parquet", "dataset.json"
_FIELDS = ("videos_dir", "train_csv", "test_csv", "classes")


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    return {"temporal_synth": given["temporal_synth"]} if "temporal_synth" in given else {}


def prepare(ws: Workspace, config: TemporalIngestConfig, upstream: dict[str, StageRef]) -> StagePlan:
    if "temporal_synth" not in upstream and config.videos_dir is None:
        synth = ws.latest("temporal_synth")
        if synth is None:
            raise StadError("temporal_ingest has no dataset: set videos_dir, train_csv, test_csv and classes "
                            f"(configs/temporal_ingest.yaml), or run `stad run temporal_synth -w {ws.root}` first")
        upstream = {**upstream, "temporal_synth": synth}
    if "temporal_synth" in upstream:
        files = dataset_files(upstream["temporal_synth"])
        effective = config.model_copy(update=files)
        inputs: dict[str, str] = {}
        identity = config
    else:
        missing = [f for f in _FIELDS if getattr(config, f) is None]
        if missing:
            raise StadError(f"temporal_ingest: set {', '.join(missing)} (or leave all unset to ingest temporal_synth)")
        effective = identity = config
        inputs = {"sources": fingerprint_paths([getattr(config, f) for f in _FIELDS])}
    ref = ws.plan(NAME, identity, upstream=list(upstream.values()), inputs=inputs)
    return StagePlan(ref, identity, upstream, shared={"config": effective, "workspace": ws.root})


def _frame_labels(video: TemporalVideo, fps: float, frames: int, num_classes: int) -> list[list[int]]:
    on = labels_at(video, np.arange(frames) / fps, num_classes)
    return [np.flatnonzero(row).tolist() for row in on]


def finish(plan: StagePlan, device: str) -> Finished:
    config: TemporalIngestConfig = plan.shared["config"]
    ws = Workspace(plan.shared["workspace"])
    classes = read_charades_classes(local_path(config.classes))
    rows, rejects = [], []
    splits = {"train": read_charades_csv(local_path(config.train_csv), classes),
              "test": read_charades_csv(local_path(config.test_csv), classes)}
    todo = [(s, v) for s, vs in splits.items() for v in (vs[: config.limit] if config.limit else vs)]
    progress = stage_progress(NAME)
    for i, (split, video) in enumerate(todo):
        path = Path(local_path(config.videos_dir)) / f"{video.video_id}{config.video_ext}"
        try:
            info = probe(path)
        except VideoError as exc:
            rejects.append({"video_id": video.video_id, "split": split, "reason": str(exc)})
            continue
        rows.append({
            "video_id": video.video_id, "split": split, "path": ws.relative(str(path)), "length": video.length,
            "fps": info.fps, "frames": info.num_frames,
            "activities": [[a.label, a.start, a.end] for a in video.activities],
            "frame_labels": _frame_labels(video, info.fps, info.num_frames, len(classes)),
        })
        if progress:
            progress(i + 1, len(todo))
    if not rows:
        raise StadError(f"temporal_ingest: none of the {len(todo)} videos has a readable file in {config.videos_dir}")
    write_parquet(pa.Table.from_pylist(rows), local_path(plan.ref.path(MANIFEST)))
    write_parquet(pa.Table.from_pylist(rejects, schema=pa.schema([("video_id", pa.string()), ("split", pa.string()),
                                                                  ("reason", pa.string())])),
                  local_path(plan.ref.path(REJECTS)))
    dataset = {"classes": ws.relative(config.classes), "train_csv": ws.relative(config.train_csv),
               "test_csv": ws.relative(config.test_csv), "num_classes": len(classes), "class_ids": list(classes.ids)}
    write_text(plan.ref.path(DATASET), json.dumps(dataset, indent=1))
    return Finished({"videos": len(rows), "rejects": len(rejects), "classes": len(classes)})


@dataclass(frozen=True)
class TemporalEntry:
    video_id: str
    split: str
    path: str  # resolved in the reading workspace
    length: float
    fps: float
    frames: int
    video: TemporalVideo


def _workspace_of(ref: StageRef) -> Workspace:
    return Workspace(ref.uri[: -len(ref.path_in_workspace)].rstrip("/") or "/")


def entries_of(ref: StageRef, splits: tuple[str, ...] | None = None) -> list[TemporalEntry]:
    """The manifest's videos (optionally of some splits), sorted by id, paths resolved."""
    from stad_core.temporal.annotations import Activity

    ws = _workspace_of(ref)
    out = []
    for r in pq.read_table(local_path(ref.path(MANIFEST))).to_pylist():
        if splits is not None and r["split"] not in splits:
            continue
        acts = tuple(Activity(int(a[0]), float(a[1]), float(a[2])) for a in r["activities"])
        out.append(TemporalEntry(r["video_id"], r["split"], ws.uri(r["path"]), float(r["length"]), float(r["fps"]),
                                 int(r["frames"]), TemporalVideo(r["video_id"], float(r["length"]), acts)))
    return sorted(out, key=lambda e: e.video_id)


def num_classes_of(ref: StageRef) -> int:
    return int(json.loads(read_text(ref.path(DATASET)))["num_classes"])


STAGE = Stage(NAME, TemporalIngestConfig, "videos + Charades CSVs -> temporal manifest (per-frame labels)",
              upstream=(), gpu=False, prepare=prepare, resolve=resolve, finish=finish,
              default_config="configs/temporal_ingest.yaml")
