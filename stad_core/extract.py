"""Extraction loop: videos + per-keyframe person boxes -> actor feature rows (and context maps).

DataLoader workers decode and sample the clips (PyAV, one forward pass per video) and hand over
batches of clips (filled across keyframes and videos of equal frame size); the main process runs
the backbone on the caller's device (fp16 autocast on CUDA), pools actor features
(:func:`~stad_core.models.actor_features.roi_actor_features`) and, once every clip of a video is
done, hands the video's rows to the writer, in the writer's spec dtype (the one conversion of the
features: banks check the dtype, they never cast). The unit of resume is the video: a video already
complete in the writer with the same input hash is skipped, unless the run is forced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from stad_core.ava.proposals import KeyframeDetections, checked_person_ids
from stad_core.banks import ActorRows, BankError, ContextMaps, FeatureBankWriter
from stad_core.config import StageConfig
from stad_core.models.actor_features import (
    GEOMETRY_DIM,
    appearance_dim,
    appearance_targets,
    box_geometry,
    context_maps,
    roi_actor_features,
)
from stad_core.models.base import VideoBackbone, frames_to_clip
from stad_core.progress import ProgressFn, report


class ExtractConfig(StageConfig):
    """Clip sampling, pooling and batching of feature extraction."""

    num_frames: int = Field(32, ge=1, description="frames per clip (the Fast rate for SlowFast)")
    stride: int = Field(2, ge=1, description="frame step between sampled frames")
    short_side: int | None = Field(256, ge=32, description="resize frames to this short side (null: as decoded)")
    roi_output_size: int = Field(7, ge=1, description="RoIAlign grid (7 PySlowFast, 8 MMAction2)")
    roi_aligned: bool = Field(False, description="RoIAlign half-pixel alignment")
    roi_temporal_pool: Literal["mean", "max"] = Field(
        "mean", description="pool the map over time before RoIAlign: mean, or max (MMAction2's AVA trick)")
    roi_context: bool = Field(False, description="append the clip's global pooled feature to every actor row "
                              "(RoI 'with context': the rows get twice the backbone's channels)")
    roi_geometry: bool = Field(False, description="append the box's geometry (x1, y1, x2, y2, log aspect) to every "
                               "actor row: RoIAlign's fixed grid drops it (docs/heads.md)")
    roi_appearance: bool = Field(False, description="append the mean colour of the box and of the whole key frame "
                                 "(6 columns, in [0, 1]): what a long-term window is read for (docs/heads.md)")
    context_grid: int | None = Field(None, ge=1, description="pool context maps to this grid (null: full map)")
    batch_size: int = Field(8, ge=1, description="clips per backbone forward (clips of one video)")
    num_workers: int = Field(2, ge=0, description="decoding worker processes (0: decode in the main process)")
    dtype: Literal["float16", "float32"] = Field(
        "float16", description="stored feature dtype: the banks' specs must say the same (checked)")
    amp: bool = Field(True, description="fp16 autocast on CUDA")
    skip_empty: bool = Field(True, description="do not run clips whose keyframe has no boxes (unless writing context)")

    def feature_dim(self, backbone_channels: int) -> int:
        """Width of an actor row for a backbone with ``backbone_channels`` (doubled with context)."""
        return (backbone_channels * (2 if self.roi_context else 1) + (GEOMETRY_DIM if self.roi_geometry else 0)
                + (appearance_dim(1) if self.roi_appearance else 0))

    def roi_recipe(self) -> str:
        """The bank spec's ``roi_recipe`` (``roi_align7_tavg_smax``; ``_tmax`` / ``_ctx`` with the tricks)."""
        aligned = "_aligned" if self.roi_aligned else ""
        t = "tmax" if self.roi_temporal_pool == "max" else "tavg"
        return (f"roi_align{self.roi_output_size}{aligned}_{t}_smax{'_ctx' if self.roi_context else ''}"
                f"{'_geo' if self.roi_geometry else ''}{'_rgb' if self.roi_appearance else ''}")


@dataclass
class VideoJob:
    """One video to extract: its file and the boxes of each keyframe (any order).

    Bank rows take their person ids from ``person_ids[t]`` when given, else from the keyframe's
    ``KeyframeDetections.person_ids`` (ground truth carries them), else -1 (unknown).
    """

    video_id: str
    path: str | Path
    keyframes: Sequence[KeyframeDetections]
    #: optional person ids per keyframe second (``[N]`` int64, aligned with that keyframe's boxes);
    #: overrides the keyframe's own ``person_ids``
    person_ids: Mapping[int, np.ndarray] = field(default_factory=dict)
    #: keyframe second ``t`` is video time ``t - time_offset`` (e.g. 900 for AVA clips cut at 15:00)
    time_offset: float = 0.0

    def input_hash(self, config_hash: str, backbone_id: str) -> str:
        """Hash of everything that determines this video's output (for resume)."""
        h = hashlib.sha256()
        p = Path(self.path)
        stat = p.stat()
        h.update(json.dumps([config_hash, backbone_id, str(p.resolve()), stat.st_size, stat.st_mtime_ns,
                             self.time_offset]).encode())
        for d in sorted(self.keyframes, key=lambda d: d.key.timestamp):
            h.update(str(d.key.timestamp).encode())
            h.update(np.ascontiguousarray(d.boxes, np.float32).tobytes())
            h.update(np.ascontiguousarray(d.scores, np.float32).tobytes())
            ids = self.keyframe_person_ids(d)
            if ids is not None:  # only then: a job without ids keeps the hash its bank was written with
                h.update(b"person_ids")
                h.update(ids.tobytes())
        return h.hexdigest()[:16]

    def keyframe_person_ids(self, detections: KeyframeDetections) -> np.ndarray | None:
        """``[N]`` int64 ids of one keyframe's boxes (override first, then the detections' own);
        None when there are none or all are -1 (unknown). ValueError when they do not fit the boxes."""
        t = detections.key.timestamp
        ids = self.person_ids.get(t)
        if ids is None:
            ids = detections.person_ids
        if ids is None:
            return None
        ids = checked_person_ids(ids, len(detections), f"{self.video_id} keyframe {t}")
        return ids if (ids >= 0).any() else None


@dataclass
class ClipBatch:
    """Up to ``batch_size`` clips of the same frame size, possibly from several videos.

    ``clips`` uint8 ``[b, T, H, W, 3]``; clip ``i`` is number ``positions[i]`` (0-based, time order)
    of the clips of job ``jobs[i]``, keyframe second ``times[i]``.
    """

    jobs: list[int]
    positions: list[int]
    times: list[int]
    clips: torch.Tensor


class _ClipStream(IterableDataset):
    """Workers split the videos between them; each decodes its videos in one pass per video and
    fills batches across keyframes and videos (a batch is flushed early only when the frame size
    changes)."""

    def __init__(self, jobs: Sequence[tuple[int, str, list[int], float]], config: ExtractConfig) -> None:
        self.jobs = jobs
        self.config = config

    def __iter__(self) -> Iterator[ClipBatch]:
        from stad_core.video import decode_clips  # PyAV stays out of the main import path

        info = get_worker_info()
        mine = self.jobs if info is None else self.jobs[info.id :: info.num_workers]
        c = self.config
        buf: list[tuple[int, int, int, torch.Tensor]] = []

        def flush() -> ClipBatch:
            batch = ClipBatch([b[0] for b in buf], [b[1] for b in buf], [b[2] for b in buf],
                              torch.stack([b[3] for b in buf]))
            buf.clear()
            return batch

        for job_index, path, times, offset in mine:
            # In a worker, one decoder thread: FFmpeg's own threads would compete with the backbone.
            clips = decode_clips(path, [t - offset for t in times], c.num_frames, c.stride, short_side=c.short_side,
                                 threads=0 if info is None else 1)
            for position, (_, clip) in enumerate(clips):  # yielded in time order = order of ``times``
                if buf and buf[0][3].shape != clip.shape:
                    yield flush()
                buf.append((job_index, position, times[position], clip))
                if len(buf) == c.batch_size:
                    yield flush()
        if buf:
            yield flush()


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not compete with the backbone for cores


def _collate(batch: ClipBatch) -> ClipBatch:
    return batch


@dataclass
class ExtractSummary:
    """What a run did (videos written / skipped as complete, clips run, rows written)."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    clips: int = 0
    rows: int = 0


def backbone_id(backbone: VideoBackbone) -> str:
    """Short content hash of the backbone's weights (part of every video's input hash)."""
    h = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        # the first 1024 values of every tensor: cheap, and any loaded/trained weights change it
        h.update(tensor.detach().reshape(-1)[:1024].cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def extract_features(
    jobs: Sequence[VideoJob],
    backbone: VideoBackbone,
    writer: FeatureBankWriter,
    config: ExtractConfig | None = None,
    *,
    context_writer: FeatureBankWriter | None = None,
    device: str | torch.device = "cpu",
    force: bool = False,
    on_progress: ProgressFn | None = None,
) -> ExtractSummary:
    """Extract actor rows of every job's keyframes and write them video by video.

    Args:
        jobs: the videos and their per-keyframe boxes (normalised xyxy).
        backbone: any :class:`VideoBackbone`; moved to ``device`` and put in eval mode.
        writer: receives ``write_video(video_id, ActorRows, meta={"input_hash": ...})``, features
            ``[R, D]`` in ``writer.spec.dtype``.
        config: ``config.dtype`` must equal every writer's ``spec.dtype`` (:class:`BankError`
            before any video is processed otherwise).
        context_writer: optional; receives ``write_context(video_id, ContextMaps)`` with one
            temporally averaged (and ``context_grid``-pooled) map per keyframe, in its spec dtype.
        force: recompute and rewrite every video, even those already complete with the same
            input hash.
        on_progress: ``(videos done, videos total)``.
    """
    config = config or ExtractConfig()
    if writer.spec.feature_dim != config.feature_dim(backbone.out_channels):
        raise ValueError(f"bank feature_dim {writer.spec.feature_dim} != actor row width "
                         f"{config.feature_dim(backbone.out_channels)} (backbone output {backbone.out_channels}"
                         f"{', doubled by roi_context' if config.roi_context else ''}"
                         f"{', plus the box geometry' if config.roi_geometry else ''}"
                         f"{', plus the colours' if config.roi_appearance else ''})")
    if context_writer is not None and config.context_grid is None:
        raise ValueError("writing context maps needs context_grid (banks store a fixed grid)")
    for name, w in (("bank", writer), ("context bank", context_writer)):
        if w is not None and w.spec.dtype != config.dtype:
            raise BankError(
                f"extract config dtype {config.dtype} != {name} spec dtype {w.spec.dtype} ({w!r}): "
                "the bank's spec fixes the stored dtype; make the two agree"
            )
    device = torch.device(device)
    backbone = backbone.to(device).eval()
    bid = backbone_id(backbone)
    chash = config.config_hash()
    summary = ExtractSummary()
    want_context = context_writer is not None
    grid = config.context_grid

    # Plan: which videos still need work, and which clips of each.
    todo: list[tuple[VideoJob, str, list[KeyframeDetections]]] = []
    for job in jobs:
        ihash = job.input_hash(chash, bid)
        done = not force and writer.is_complete(job.video_id) and \
            writer.video_meta(job.video_id).get("input_hash") == ihash
        if done and want_context:
            done = context_writer.is_complete(job.video_id) and \
                context_writer.video_meta(job.video_id).get("input_hash") == ihash
        if done:
            summary.skipped.append(job.video_id)
            continue
        frames = sorted(job.keyframes, key=lambda d: d.key.timestamp)
        if config.skip_empty and not want_context:
            frames = [d for d in frames if len(d)]
        todo.append((job, ihash, frames))
    total_videos = len(jobs)
    report(on_progress, len(summary.skipped), total_videos)

    # Per-video accumulators, filled batch by batch (workers may interleave videos).
    pending: dict[int, dict[str, Any]] = {}

    def finish(i: int) -> None:
        job, ihash, frames = todo[i]
        acc = pending.pop(i, {"feats": {}, "ctx": {}})
        by_t = {d.key.timestamp: d for d in frames}
        ts = [d.key.timestamp for d in frames]
        feats = [acc["feats"][k] for k in sorted(acc["feats"])]  # clip order = time order
        dim = backbone.out_channels
        out_dtype = writer.spec.numpy_dtype  # the one cast of the features: to the bank's own dtype
        features = np.concatenate(feats).astype(out_dtype) if feats else np.zeros((0, dim), out_dtype)
        boxes = np.concatenate([by_t[t].boxes for t in ts]).astype(np.float32) if ts else np.zeros((0, 4), np.float32)
        scores = np.concatenate([by_t[t].scores for t in ts]).astype(np.float32) if ts else np.zeros(0, np.float32)
        stamps = np.concatenate([np.full(len(by_t[t]), float(t)) for t in ts]) if ts else np.zeros(0)
        known = [job.keyframe_person_ids(by_t[t]) for t in ts]
        pids = np.concatenate([
            np.full(len(by_t[t]), -1, np.int64) if ids is None else ids for t, ids in zip(ts, known, strict=True)
        ]) if ts else np.zeros(0, np.int64)
        source = frames[0].source if frames else "none"
        meta = {"input_hash": ihash}
        if want_context:
            ctx = [acc["ctx"][k] for k in sorted(acc["ctx"])]
            ctx_dtype = context_writer.spec.numpy_dtype
            maps = np.concatenate(ctx).astype(ctx_dtype) if ctx else \
                np.zeros((0, dim, grid or 1, grid or 1), ctx_dtype)
            context_writer.write_context(job.video_id, ContextMaps(maps, np.asarray(ts, np.float64)), meta=meta)
        writer.write_video(job.video_id, ActorRows(features, boxes, scores, stamps, pids, source), meta=meta)
        summary.written.append(job.video_id)
        summary.rows += len(features)
        report(on_progress, len(summary.skipped) + len(summary.written), total_videos)

    stream_jobs = []
    for i, (job, _, frames) in enumerate(todo):
        if frames:
            stream_jobs.append((i, str(job.path), [d.key.timestamp for d in frames], float(job.time_offset)))
        else:
            finish(i)  # nothing to run: an empty video is still written (and so marked complete)

    if stream_jobs:
        loader = DataLoader(
            _ClipStream(stream_jobs, config), batch_size=None, collate_fn=_collate,
            num_workers=min(config.num_workers, len(stream_jobs)), worker_init_fn=_worker_init,
            pin_memory=device.type == "cuda", prefetch_factor=2 if config.num_workers else None,
            persistent_workers=False,
        )
        use_amp = config.amp and device.type == "cuda"
        boxes_of = {i: {d.key.timestamp: d for d in frames} for i, (_, _, frames) in enumerate(todo)}
        for batch in loader:
            clip = frames_to_clip(batch.clips.to(device, non_blocking=True))  # [b, 3, T, H, W] uint8
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                maps = backbone(clip).maps
            dets = [boxes_of[j][t] for j, t in zip(batch.jobs, batch.times, strict=True)]
            boxes = [torch.from_numpy(d.boxes).reshape(-1, 4) for d in dets]
            parts = [roi_actor_features(maps, boxes, tuple(clip.shape[3:]), config.roi_output_size,
                                        config.roi_aligned, temporal_pool=config.roi_temporal_pool,
                                        with_context=config.roi_context).float().cpu()]
            if config.roi_geometry:
                parts.append(box_geometry(torch.cat(boxes)))
            if config.roi_appearance:
                parts.append(appearance_targets(batch.clips, boxes))
            feats = torch.cat(parts, dim=1).numpy()
            per_clip = np.split(feats, np.cumsum([len(d) for d in dets])[:-1])
            ctx = context_maps([m.float() for m in maps], grid).cpu().numpy() if want_context else None
            summary.clips += len(dets)
            for i, (j, pos) in enumerate(zip(batch.jobs, batch.positions, strict=True)):
                acc = pending.setdefault(j, {"feats": {}, "ctx": {}})
                acc["feats"][pos] = per_clip[i]
                if ctx is not None:
                    acc["ctx"][pos] = ctx[i:i + 1]
                if len(acc["feats"]) == len(todo[j][2]):
                    finish(j)
    return summary
