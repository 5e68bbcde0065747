"""extract: videos + detections + backbone -> zarr feature banks, one unit of work per video.

Outputs ``long_term.zarr`` (a row per detected actor and keyframe) and, when ``context_grid`` is
set, ``context.zarr`` (a pooled clip map per keyframe). The bank is the source of truth for
resume: a video counts as done only when its done marker carries this run's work key AND the
bank(s) list it complete. Person ids travel with the detections into the bank's ``person_ids``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from stad_core.banks import BankSpec
from stad_core.extract import ExtractConfig, VideoJob, extract_features
from storage import open_bank
from storage.exports import backbone_info, cached_backbone
from storage.stages.base import Finished, Stage, StagePlan, VideoWork, model_slot
from storage.stages.detect import detections_uri
from storage.stages.ingest import dataset_of, videos_of
from storage.tables import read_detections
from storage.uri import local_path
from storage.workspace import StageRef, Workspace

NAME = "extract"
LONG_TERM = "long_term.zarr"
CONTEXT = "context.zarr"
_FILES = {"long_term": LONG_TERM, "context": CONTEXT}

def bank_uris(ref: StageRef) -> dict[str, str]:
    """``{"long_term": uri, "context": uri}`` of an extract output (context only if it has one)."""
    uris = {"long_term": ref.path(LONG_TERM)}
    if ref.counts.get("context", 0) or local_path(ref.path(CONTEXT)).exists():
        uris["context"] = ref.path(CONTEXT)
    return uris


def bank_specs(config: ExtractConfig, finetune: StageRef, detect_source: str, code_version: str) -> dict[str, BankSpec]:
    """The specs of the banks this config builds from ``finetune``'s backbone (dtype: the config's)."""
    info = backbone_info(finetune.uri)
    common: dict[str, Any] = dict(
        feature_dim=config.feature_dim(int(info["out_channels"])), dtype=config.dtype,
        backbone=info["backbone"] + "".join(f";{k}={v}" for k, v in sorted(info["knobs"].items())),
        checkpoint_sha256=info["sha256"],
        roi_recipe=config.roi_recipe(),
        clip_num_frames=config.num_frames, clip_stride=config.stride, detector_source=detect_source,
        code_version=code_version,
    )
    specs = {"long_term": BankSpec(kind="long_term", **common)}
    if config.context_grid is not None:
        # Context maps keep the backbone's channels (roi_context widens only the actor rows).
        specs["context"] = BankSpec(kind="context", context_grid=(config.context_grid, config.context_grid),
                                    **{**common, "feature_dim": int(info["out_channels"])})
    return specs


def prepare(ws: Workspace, config: ExtractConfig, upstream: dict[str, StageRef], *, name: str = NAME) -> StagePlan:
    """The plan of an extract run; ``name``: the stage it is recorded as (``tubes_extract`` reuses it)."""
    ingest, detect, finetune = upstream["ingest"], upstream["detect"], upstream["finetune"]
    ref = ws.plan(name, config, upstream=[ingest, detect, finetune])
    # Annotation second t is video second t - time_offset (AVA's 15-minute cuts: 900).
    time_offset = float(dataset_of(ingest).time_offset)
    dets = _detections(detections_uri(detect))
    videos = tuple(VideoWork(v.video_id, {"path": v.path, "time_offset": time_offset})
                   for v in videos_of(ingest) if v.video_id in dets)
    source = next((d.source for v in videos for d in dets[v.video_id]), "none")
    specs = bank_specs(config, finetune, source, ref.code_version)
    return StagePlan(ref, config, upstream, videos, shared={
        "config": config, "finetune_uri": finetune.uri, "detections": detections_uri(detect), "specs": specs})


def start(plan: StagePlan, force: bool) -> None:
    # Banks are created once here, so per-video work never races on the root group.
    for kind, spec in plan.shared["specs"].items():
        open_bank(plan.ref.path(_FILES[kind]), "a", spec)


def extract_video(*, video_id: str, stage_uri: str, device: str, config: ExtractConfig, finetune_uri: str,
                  detections: str, path: str, specs: dict[str, BankSpec], force: bool = False,
                  time_offset: float = 0.0) -> dict[str, int]:
    """Extract one video's actor rows (and context maps) into the stage's banks."""
    banks = {kind: open_bank(f"{stage_uri.rstrip('/')}/{_FILES[kind]}", "a", spec) for kind, spec in specs.items()}
    job = VideoJob(video_id, path, _detections(detections).get(video_id, []), time_offset=time_offset)
    with model_slot(device):
        summary = extract_features([job], cached_backbone(finetune_uri), banks["long_term"], config,
                                   context_writer=banks.get("context"), device=device, force=force)
    return {"rows": summary.rows, "clips": summary.clips}


def bank_complete(*, video_id: str, stage_uri: str, specs: dict[str, BankSpec], **_: Any) -> bool:
    """Every bank lists the video complete (the markers alone are not trusted over the data)."""
    return all(open_bank(f"{stage_uri.rstrip('/')}/{_FILES[kind]}", "r").is_complete(video_id) for kind in specs)


def finish(plan: StagePlan, device: str) -> Finished:
    return Finished({"context": int("context" in plan.shared["specs"])})


def _detections(uri: str) -> dict[str, list[Any]]:
    path = local_path(uri)
    return _cached_detections(str(path), path.stat().st_mtime_ns)  # a forced detect rewrites the file


@lru_cache(maxsize=2)
def _cached_detections(path: str, mtime_ns: int) -> dict[str, list[Any]]:
    return read_detections(path)


STAGE = Stage(NAME, ExtractConfig, "videos + detections + backbone -> long-term and context feature banks (zarr)",
              upstream=("ingest", "detect", "finetune"), gpu=True, prepare=prepare, start=start,
              video=extract_video, video_complete=bank_complete, finish=finish, default_config="configs/extract.yaml")
