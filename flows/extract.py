"""Extract stage: videos + detections + backbone -> zarr feature banks, one GPU task per video.

Outputs ``long_term.zarr`` (a row per detected actor and keyframe) and, when ``context_grid`` is
set, ``context.zarr`` (a pooled clip map per keyframe). Resume is per video and the bank is the
source of truth: a video counts as done only when its done marker carries this run's work key AND
the bank(s) list it complete; a killed video has neither and is redone (bank writes are atomic
per video, so the re-run's bank equals an uninterrupted run's). Person ids travel with the
detections (ground-truth boxes carry AVA's ids) into the bank's ``person_ids``; -1 where unknown.

Run alone: ``stad run extract -c configs/extract.yaml`` (latest ingest, detect and finetune outputs).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from typing import Any

from prefect import flow

from flows.detect import detections_uri, read_detections
from flows.finetune import backbone_info, backbone_info_at, load_backbone
from flows.ingest import annotation_files, videos_of
from flows.runtime import default_task_runner, make_video_task, map_videos, reuse_or_begin, summarise, work_inputs
from flows.workspace import StageRef, Workspace, join, local_path
from stad_core.banks import ActorRows, BankSpec, ContextMaps, FeatureBankWriter
from stad_core.extract import ExtractConfig, VideoJob, extract_features
from storage import open_bank

STAGE = "extract"
LONG_TERM = "long_term.zarr"
CONTEXT = "context.zarr"

# On a CPU one forward already uses every core: running several videos at once would only multiply
# memory. GPU tasks are throttled per device by flows.gpu instead.
_CPU_SLOT = threading.Semaphore(1)


def bank_uris(ref: StageRef) -> dict[str, str]:
    """``{"long_term": uri, "context": uri}`` of an extract output (context only if it has one)."""
    uris = {"long_term": join(ref.uri, LONG_TERM)}
    if ref.counts.get("context", 0) or local_path(join(ref.uri, CONTEXT)).exists():
        uris["context"] = join(ref.uri, CONTEXT)
    return uris


def bank_specs(config: ExtractConfig, finetune: StageRef, detect_source: str, code_version: str) -> dict[str, BankSpec]:
    info = backbone_info(finetune)
    common: dict[str, Any] = dict(
        feature_dim=int(info["out_channels"]), dtype=config.dtype,
        backbone=info["backbone"] + "".join(f";{k}={v}" for k, v in sorted(info["knobs"].items())),
        checkpoint_sha256=info["sha256"],
        roi_recipe=f"roi_align{config.roi_output_size}{'_aligned' if config.roi_aligned else ''}_tavg_smax",
        clip_num_frames=config.num_frames, clip_stride=config.stride, detector_source=detect_source,
        code_version=code_version,
    )
    specs = {"long_term": BankSpec(kind="long_term", **common)}
    if config.context_grid is not None:
        specs["context"] = BankSpec(kind="context", context_grid=(config.context_grid, config.context_grid), **common)
    return specs


def _backbone(finetune_uri: str) -> Any:
    # Keyed by the weights' hash too: a forced finetune rewrites the same folder.
    return _cached_backbone(finetune_uri, backbone_info_at(finetune_uri)["sha256"])


@lru_cache(maxsize=2)
def _cached_backbone(finetune_uri: str, sha256: str) -> Any:
    return load_backbone(finetune_uri)[0]


class _Rewrite:
    """A bank writer that reports no video complete, so a forced run recomputes every video."""

    def __init__(self, bank: FeatureBankWriter) -> None:
        self._bank = bank

    @property
    def spec(self) -> BankSpec:
        return self._bank.spec

    def is_complete(self, video_id: str) -> bool:
        return False

    def video_meta(self, video_id: str) -> dict[str, Any]:
        return self._bank.video_meta(video_id)

    def write_video(self, video_id: str, rows: ActorRows, *, meta: Mapping[str, Any] | None = None) -> None:
        self._bank.write_video(video_id, rows, meta=meta)

    def write_context(self, video_id: str, maps: ContextMaps, *, meta: Mapping[str, Any] | None = None) -> None:
        self._bank.write_context(video_id, maps, meta=meta)

    def delete_video(self, video_id: str) -> None:
        self._bank.delete_video(video_id)


@contextmanager
def _slot(device: str) -> Iterator[None]:
    if device == "cpu":
        with _CPU_SLOT:
            yield
    else:
        yield


def extract_video(*, video_id: str, stage_uri: str, device: str, config: ExtractConfig, finetune_uri: str,
                  detections: str, path: str, force: bool, time_offset: float = 0.0) -> dict[str, int]:
    """Extract one video's actor rows (and context maps) into the stage's banks."""
    banks = {"long_term": open_bank(join(stage_uri, LONG_TERM), "a")}
    if config.context_grid is not None:
        banks["context"] = open_bank(join(stage_uri, CONTEXT), "a")
    writers = {k: _Rewrite(b) if force else b for k, b in banks.items()}
    job = VideoJob(video_id, path, _detections(detections).get(video_id, []), time_offset=time_offset)
    with _slot(device):
        summary = extract_features([job], _backbone(finetune_uri), writers["long_term"], config,
                                   context_writer=writers.get("context"), device=device)
    return {"rows": summary.rows, "clips": summary.clips, "context": int("context" in banks)}


def _detections(uri: str) -> dict[str, list[Any]]:
    path = local_path(uri)
    return _cached_detections(str(path), path.stat().st_mtime_ns)  # a forced detect rewrites the file


@lru_cache(maxsize=2)
def _cached_detections(path: str, mtime_ns: int) -> dict[str, list[Any]]:
    return read_detections(path)


def bank_complete(*, video_id: str, stage_uri: str, config: ExtractConfig, **_: Any) -> bool:
    """Both banks list the video complete (the markers alone are not trusted over the data)."""
    if not open_bank(join(stage_uri, LONG_TERM), "r").is_complete(video_id):
        return False
    return config.context_grid is None or open_bank(join(stage_uri, CONTEXT), "r").is_complete(video_id)


extract_task = make_video_task(extract_video, name="extract-video", gpu=True, is_complete=bank_complete)


@flow(name="extract", log_prints=True, task_runner=default_task_runner())
def extract_flow(
    config: ExtractConfig = ExtractConfig(),
    workspace: str = "workspace",
    force: bool = False,
    ingest: StageRef | None = None,
    detect: StageRef | None = None,
    finetune: StageRef | None = None,
) -> StageRef:
    """Feature banks of every video that has detections (one GPU-declared task per video)."""
    ws = Workspace(workspace)
    ingest = ingest or ws.require_latest("ingest", STAGE)
    detect = detect or ws.require_latest("detect", STAGE)
    finetune = finetune or ws.require_latest("finetune", STAGE)
    planned = ws.plan(STAGE, config, upstream=[ingest, detect, finetune])
    done = reuse_or_begin(ws, planned, force=force)
    if done is not None:
        return done
    # Annotation second t is video second t - time_offset (AVA's 15-minute cuts: 900).
    time_offset = float(annotation_files(ingest).time_offset)
    dets = _detections(detections_uri(detect))
    videos = [v for v in videos_of(ingest) if v.video_id in dets]
    source = next((d.source for v in videos for d in dets[v.video_id]), "none")
    specs = bank_specs(config, finetune, source, planned.code_version)
    for kind, spec in specs.items():  # created once here: per-video tasks never race on the root
        open_bank(join(planned.uri, LONG_TERM if kind == "long_term" else CONTEXT), "a", spec)
    results = map_videos(
        extract_task, [v.video_id for v in videos], stage=STAGE, stage_uri=planned.uri,
        config_hash=planned.config_hash, code_version=planned.code_version, inputs=work_inputs(planned),
        force=force, gpu=True,
        params={"config": config, "finetune_uri": finetune.uri, "detections": detections_uri(detect), "force": force},
        per_video={v.video_id: {"path": v.path, "time_offset": time_offset} for v in videos},
    )
    counts = summarise(results)
    counts["context"] = int(config.context_grid is not None)
    return ws.commit(replace(planned, counts=counts))


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main(STAGE)
