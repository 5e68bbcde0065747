"""tubes_ingest: a tube dataset (the synthetic one, or a MultiSports / UCF101-24 / JHMDB pickle + videos)
-> ``tubes_gt.pkl`` + per-frame AVA-style CSVs + the ingest layout (``manifest.parquet``, ``dataset.json``).

Its output has the ingest stage's layout, so detect, finetune, extract and train read it unchanged when
given as their ``ingest`` upstream (``upstream={"ingest": ref}``); keyframes are every
``frame_stride``-th frame, so heads train per frame at the dataset's frame rate. ``tubes_evaluate``
scores a head trained on it with frame-mAP and video-mAP against ``tubes_gt.pkl``.
"""

from __future__ import annotations

import json
from pathlib import Path

from stad_core.errors import StadError
from stad_core.ingest import IngestConfig, build_manifest
from stad_core.tubes.config import TubesIngestConfig
from stad_core.tubes.dataset import stad_video_id, write_tube_annotations
from stad_core.tubes.gt import TubeGroundTruth, load_ground_truth, save_ground_truth
from stad_core.tubes.synth import synth_config_of, synth_tubes
from stad_core.video import probe
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.ingest import DATASET, MANIFEST, DatasetFiles, _relative_manifest_paths
from storage.stages.progress import stage_progress
from storage.uri import local_path
from storage.workspace import StageRef, Workspace, fingerprint_paths, write_text

NAME = "tubes_ingest"
GT_FILE = "tubes_gt.pkl"
META = "tubes.json"


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    return {"synth": given["synth"]} if "synth" in given else {}


def prepare(ws: Workspace, config: TubesIngestConfig, upstream: dict[str, StageRef]) -> StagePlan:
    inputs: dict[str, str] = {}
    if config.source == "synth":
        if "synth" not in upstream:
            synth = ws.latest("synth")
            if synth is None:
                raise StadError(f"tubes_ingest source=synth needs a synthetic dataset: run `stad run synth -w {ws.root}`"
                                " first, or set source=files with groundtruth and videos_dir")
            upstream = {**upstream, "synth": synth}
    else:
        if not config.groundtruth or not config.videos_dir:
            raise StadError("tubes_ingest source=files needs groundtruth (the tube pickle) and videos_dir")
        upstream = {}
        inputs = {"sources": fingerprint_paths([config.groundtruth, config.videos_dir])}
    ref = ws.plan(NAME, config, upstream=list(upstream.values()), inputs=inputs)
    return StagePlan(ref, config, upstream, shared={"workspace": ws.root})


def _load(config: TubesIngestConfig, upstream: dict[str, StageRef]) -> tuple[TubeGroundTruth, str, dict[str, float]]:
    """The tube GT, the videos folder and each video's annotation frame rate."""
    if config.source == "synth":
        videos_dir = upstream["synth"].path("videos")
        synth = synth_config_of(local_path(upstream["synth"].uri))
        gt = synth_tubes(synth, min_frames=config.min_frames)
        return gt, videos_dir, {v: float(synth.fps) for v in gt.nframes}
    gt = load_ground_truth(config.groundtruth)  # type: ignore[arg-type]  # checked in prepare
    names = [v for s in (gt.videos(config.split - 1, "train"), gt.videos(config.split - 1, "test")) for v in s]
    ids = [stad_video_id(v) for v in names]
    if len(set(ids)) != len(ids):
        raise StadError(f"{config.groundtruth}: two videos share a file name; stad names videos by file name")
    fps: dict[str, float] = {}
    if config.fps is None:
        files = {p.stem: p for p in Path(config.videos_dir).rglob("*") if p.is_file()}  # type: ignore[arg-type]
        for name, vid in zip(names, ids):
            if vid in files:
                fps[name] = float(probe(files[vid]).fps)
    missing = [n for n in names if config.fps is None and n not in fps]
    for n in missing:  # ingest rejects these videos with a reason; any rate writes their rows
        fps[n] = 25.0
    if config.fps is not None:
        fps = {n: float(config.fps) for n in names}
    return gt, config.videos_dir, fps  # type: ignore[return-value]


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, TubesIngestConfig)
    ws = Workspace(plan.shared["workspace"])
    out = local_path(plan.ref.uri)
    gt, videos_dir, fps = _load(config, plan.upstream)
    save_ground_truth(gt, out / GT_FILE)
    files = write_tube_annotations(gt, out / "annotations", fps, split=config.split - 1,
                                   frame_stride=config.frame_stride, margin_frames=config.margin_frames)
    ingest = IngestConfig(videos_dir=str(videos_dir), recursive=config.source == "files", train_csv=files.train_csv,
                          val_csv=files.val_csv, labelmap=files.labelmap, keyframes="annotations",
                          verify_decode=config.verify_decode, out_dir=str(out))
    result = build_manifest(ingest, on_progress=stage_progress(NAME))
    content_hash = _relative_manifest_paths(ws, plan.ref.path(MANIFEST))
    write_text(plan.ref.path(DATASET), json.dumps(DatasetFiles.from_config(ingest, ws).to_json(), indent=1))
    meta = {"fps": fps, "split": config.split, "frame_stride": config.frame_stride,
            "videos": {stad_video_id(v): v for v in gt.nframes}}
    write_text(plan.ref.path(META), json.dumps(meta, indent=1))
    counts = {"videos": result.num_videos, "keyframes": result.num_keyframes, "rejects": result.num_rejects,
              "tubes": gt.num_tubes()}
    return Finished(counts, inputs={"manifest": content_hash})


def tubes_meta(ref: StageRef) -> dict:
    """fps per dataset video, split, frame stride and the stad id -> dataset name map of an output."""
    return json.loads((local_path(ref.uri) / META).read_text())


STAGE = Stage(NAME, TubesIngestConfig, "tube dataset -> tube GT pickle + per-frame AVA CSVs + manifest (ingest layout)",
              upstream=(), gpu=False, prepare=prepare, resolve=resolve, finish=finish,
              default_config="configs/tubes_ingest.yaml")
