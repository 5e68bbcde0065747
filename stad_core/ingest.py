"""The ingest stage: a videos folder + AVA annotation files -> a dataset manifest and a rejects table.

Outputs (both parquet, rows sorted so the same inputs give the same content hash):

``manifest.parquet`` -- one row per usable video (``MANIFEST_SCHEMA``):
    video_id        string    file stem, matched against the annotation video ids
    path            string    ``videos_dir / <file>`` as configured (relative paths stay relative to
                              the directory the stages run in, so a workspace can move machines)
    split           string    train / val / test: which annotation file mentions the video
    codec           string
    width, height   int32     stored frame size in pixels
    fps             float64   average frame rate (see ``stad_core.video.VideoInfo``)
    num_frames      int64     frames in the video stream (exact, from its packets)
    duration        float64   seconds
    start_time      float64   first frame's pts in seconds on the stream clock
    variable_frame_rate bool
    keyframes       list<float64>  annotation timestamps (seconds as written in the CSVs, e.g. 902)
    keyframe_times  list<float64>  the same keyframes on the video's own timeline:
                              ``keyframes - time_offset`` -- what to pass to ``decode_clip``
    num_keyframes   int32
    file_size       int64     bytes

``rejects.parquet`` -- everything left out, with a reason (``REJECTS_SCHEMA``): video_id, path
(null when there is no file), split (null when unknown), ``kind`` (one of ``RejectKind``),
``reason`` (a sentence), ``timestamps`` (list<float64>: the keyframes concerned, empty for
whole-video rejects). One row per (video, kind): keyframe rejects are grouped, not one row each.

Keyframes come from the annotation files (``keyframes="annotations"``: every distinct timestamp a
video's rows mention, including box-less rows) or from a setting (``keyframes="range"``: every
whole second of ``keyframe_range``, inclusive, e.g. AVA's 902..1798). Nothing about AVA's range is
assumed. A keyframe must fall inside the video (``0 <= t - time_offset < duration``) and, when a
range is set, inside it. Excluded keyframes (AVA's excluded-timestamps files) stay in the manifest
by default (``bank_excluded``): they are not scored or trained on (evaluate and train read the
exclusions files themselves), but detect and extract must still cover them, because a long-term
bank window needs every second of the video -- the synthetic alarm flash, for one, is only ever on
excluded keyframes. With ``bank_excluded: false`` they are left out like the others below. Each
of these goes to the rejects table instead of being dropped silently. So does a video whose id
(file stem or annotation id) breaks the video-id rule (``stad_core.ava.keys.check_video_id``: e.g.
``..mp4`` has the id ``.``), before anything is probed or written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import field_validator, model_validator

from stad_core.atomic import atomic_write
from stad_core.ava import read_ava_csv, read_exclusions, read_labelmap
from stad_core.ava.keys import VIDEO_ID_RULE, check_video_id
from stad_core.config import StageConfig
from stad_core.errors import InputFileError
from stad_core.progress import ProgressFn, report
from stad_core.video import VideoError, VideoInfo, decode_frames_at, probe

__all__ = [
    "MANIFEST_SCHEMA",
    "REJECTS_SCHEMA",
    "IngestConfig",
    "ManifestEntry",
    "ManifestResult",
    "RejectKind",
    "build_manifest",
    "manifest_entries",
    "read_manifest",
    "read_rejects",
]

SCHEMA_VERSION = "1"
Split = str  # "train" / "val" / "test", or IngestConfig.unlisted_split
RejectKind = Literal[
    "missing_video",  # an annotation file names a video with no file in videos_dir
    "unreadable_video",  # probe or the decode check failed (the decoder's reason is given)
    "duplicate_file",  # two files with the same stem; the other one is used
    "split_conflict",  # annotation files of two splits name the same video
    "unannotated",  # a file no annotation mentions, with keyframes taken from the annotations
    "no_keyframes",  # every keyframe of the video was rejected
    "keyframe_outside_video",
    "keyframe_outside_range",
    "excluded",  # listed in an excluded-timestamps file
    "invalid_video_id",  # a file stem or annotation id that cannot name a video (``check_video_id``)
]

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("codec", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("fps", pa.float64(), nullable=False),
        pa.field("num_frames", pa.int64(), nullable=False),
        pa.field("duration", pa.float64(), nullable=False),
        pa.field("start_time", pa.float64(), nullable=False),
        pa.field("variable_frame_rate", pa.bool_(), nullable=False),
        pa.field("keyframes", pa.list_(pa.float64()), nullable=False),
        pa.field("keyframe_times", pa.list_(pa.float64()), nullable=False),
        pa.field("num_keyframes", pa.int32(), nullable=False),
        pa.field("file_size", pa.int64(), nullable=False),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("path", pa.string()),
        pa.field("split", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("timestamps", pa.list_(pa.float64()), nullable=False),
    ]
)

_SPLITS = ("train", "val", "test")


class IngestConfig(StageConfig):
    """Settings of the ingest stage (``configs/ingest.yaml``)."""

    videos_dir: str = "data/videos"
    recursive: bool = False  # also look in sub-folders of videos_dir
    video_extensions: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi")  # preference order for duplicates
    train_csv: str | None = None  # AVA ground truth of each split (any may be absent)
    val_csv: str | None = None
    test_csv: str | None = None  # may hold box-less rows ("vid,0902") naming keyframes only
    exclusions: tuple[str, ...] = ()  # excluded-timestamps files (video_id,timestamp)
    # keep excluded keyframes in the manifest so the banks cover them (never scored or trained on)
    bank_excluded: bool = True
    labelmap: str | None = None  # checked to be readable; recorded in the manifest metadata
    keyframes: Literal["annotations", "range"] = "annotations"
    keyframe_range: tuple[int, int] | None = None  # inclusive whole seconds, e.g. [902, 1798]
    time_offset: float = 0.0  # video time = annotation timestamp - time_offset (900 for AVA cuts from 15:00)
    unlisted_split: str = "test"  # split of a video no annotation file mentions (range mode)
    verify_decode: bool = True  # decode the first, middle and last keyframe to catch broken files
    out_dir: str = "workspace/ingest"

    @field_validator("exclusions", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value  # `exclusions=file.csv` on the CLI

    @field_validator("video_extensions")
    @classmethod
    def _normalise_extensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in value)
        if not out:
            raise ValueError("at least one video extension is needed")
        return out

    @model_validator(mode="after")
    def _check_keyframes(self) -> IngestConfig:
        if self.keyframe_range is not None and self.keyframe_range[0] > self.keyframe_range[1]:
            raise ValueError(f"keyframe_range start > end: {list(self.keyframe_range)}")
        if self.keyframes == "range" and self.keyframe_range is None:
            raise ValueError("keyframes=range needs keyframe_range: [first, last] (inclusive seconds)")
        return self

    def annotation_files(self) -> dict[Split, str]:
        """split -> annotation CSV, for the splits that have one."""
        given = {"train": self.train_csv, "val": self.val_csv, "test": self.test_csv}
        return {split: path for split, path in given.items() if path}


@dataclass(frozen=True)
class ManifestResult:
    """What ``build_manifest`` wrote: a small reference, never the data."""

    manifest_path: str
    rejects_path: str
    num_videos: int
    num_keyframes: int
    num_rejects: int  # rows in the rejects table
    videos_per_split: dict[str, int]
    rejects_per_kind: dict[str, int]
    content_hash: str  # sha256 (16 hex digits) of the manifest rows
    config_hash: str
    warnings: tuple[str, ...] = ()  # tolerated annotation problems (``file:line: ...``)


@dataclass(frozen=True)
class ManifestEntry:
    """One manifest row, typed (``manifest_entries``)."""

    video_id: str
    path: str
    split: str
    info: VideoInfo
    keyframes: np.ndarray  # float64 [K] annotation timestamps
    keyframe_times: np.ndarray  # float64 [K] seconds on the video timeline
    file_size: int


@dataclass
class _Reject:
    video_id: str
    kind: str
    reason: str
    path: str | None = None
    split: str | None = None
    timestamps: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Inputs


def _find_videos(config: IngestConfig, rejects: list[_Reject]) -> dict[str, Path]:
    """video_id -> file in ``videos_dir`` (duplicates resolved by extension preference)."""
    root = Path(config.videos_dir)
    if not root.is_dir():
        raise InputFileError(root, "videos folder not found", hint="set videos_dir to the folder holding the videos")
    rank = {ext: i for i, ext in enumerate(config.video_extensions)}
    pattern = root.rglob("*") if config.recursive else root.iterdir()
    candidates: dict[str, list[Path]] = {}
    for path in pattern:
        if path.suffix.lower() in rank and path.is_file():
            candidates.setdefault(path.stem, []).append(path)
    found: dict[str, Path] = {}
    for video_id, paths in candidates.items():
        paths.sort(key=lambda p: (rank[p.suffix.lower()], str(p)))
        found[video_id] = _configured_path(root, paths[0])
        for other in paths[1:]:
            rejects.append(
                _Reject(video_id, "duplicate_file", f"another file has the same name; using {paths[0].name}",
                        path=str(_configured_path(root, other)))
            )
    return found


def _configured_path(root: Path, path: Path) -> Path:
    # Keep the prefix the user configured (relative stays relative) for a portable manifest.
    return root / path.relative_to(root)


def _read_annotations(
    config: IngestConfig,
) -> tuple[dict[str, dict[Split, set[float]]], list[str]]:
    """video_id -> split -> annotated keyframe timestamps; plus the readers' warnings."""
    by_video: dict[str, dict[Split, set[float]]] = {}
    warnings: list[str] = []
    for split, csv_path in config.annotation_files().items():
        table = read_ava_csv(csv_path, kind="groundtruth", allow_boxless_rows=True)
        warnings.extend(table.warnings)
        videos = np.asarray(table.videos, dtype=object)
        for code, video_id in enumerate(videos):
            stamps = np.unique(table.timestamp[table.video_index == code])
            by_video.setdefault(str(video_id), {}).setdefault(split, set()).update(float(s) for s in stamps)
        for video_id, stamp in table.boxless:
            by_video.setdefault(str(video_id), {}).setdefault(split, set()).add(float(stamp))
    return by_video, warnings


def _read_exclusions(paths: Iterable[str]) -> dict[str, set[float]]:
    out: dict[str, set[float]] = {}
    for path in paths:
        for key in read_exclusions(path):
            out.setdefault(key.video_id, set()).add(float(key.timestamp))
    return out


# ----------------------------------------------------------------------------------------------
# Building


def build_manifest(config: IngestConfig, *, on_progress: ProgressFn | None = None) -> ManifestResult:
    """Probe every video, attach its split and keyframes, write the manifest and rejects tables.

    Writes ``<out_dir>/manifest.parquet`` and ``<out_dir>/rejects.parquet`` (each replaced
    atomically, so a failed run leaves the previous outputs intact). ``on_progress(done, total)``
    counts probed videos. A bad video becomes a reject row and the batch goes on; a bad annotation
    file, exclusions file or label map stops the stage with an error naming the file and line.
    """
    rejects: list[_Reject] = []
    labelmap_meta = _check_labelmap(config.labelmap)
    annotations, warnings = _read_annotations(config)
    excluded = _read_exclusions(config.exclusions)
    files = _find_videos(config, rejects)

    # Decide each video's split before probing anything.
    jobs: list[tuple[str, Path, str, list[float]]] = []
    for video_id in sorted(set(files) | set(annotations)):
        splits = annotations.get(video_id, {})
        path = files.get(video_id)
        try:
            check_video_id(video_id)
        except ValueError:
            # `..mp4` has the id "."; such ids would break bank paths at extract, after detect.
            split_names = sorted(splits, key=_SPLITS.index)
            rejects.append(
                _Reject(video_id, "invalid_video_id",
                        f"{video_id!r} cannot name a video: a video id must be {VIDEO_ID_RULE} "
                        "(rename the file and its annotation rows)",
                        path=None if path is None else str(path),
                        split=split_names[0] if len(split_names) == 1 else None,
                        timestamps=sorted(set().union(*splits.values())))
            )
            continue
        if path is None:
            split_names = sorted(splits, key=_SPLITS.index)
            rejects.append(
                _Reject(video_id, "missing_video",
                        f"named in the {'/'.join(split_names)} annotations but no "
                        f"{video_id}{{{','.join(config.video_extensions)}}} is in {config.videos_dir}",
                        split=split_names[0] if len(split_names) == 1 else None,
                        timestamps=sorted(set().union(*splits.values())))
            )
            continue
        if len(splits) > 1:
            rejects.append(
                _Reject(video_id, "split_conflict",
                        f"named in the annotations of several splits ({', '.join(sorted(splits))})",
                        path=str(path))
            )
            continue
        if splits:
            split, stamps = next(iter(splits.items()))
        elif config.keyframes == "range":
            split, stamps = config.unlisted_split, set()
        else:
            rejects.append(
                _Reject(video_id, "unannotated",
                        "no annotation file mentions this video (use keyframes=range to take it anyway)",
                        path=str(path))
            )
            continue
        if config.keyframes == "range":
            lo, hi = config.keyframe_range  # type: ignore[misc]  # validated
            keyframes = [float(s) for s in range(lo, hi + 1)]
        else:
            keyframes = sorted(stamps)
        jobs.append((video_id, path, split, keyframes))

    rows: list[dict[str, object]] = []
    report(on_progress, 0, len(jobs))
    for done, (video_id, path, split, keyframes) in enumerate(jobs, start=1):
        row = _ingest_video(config, video_id, path, split, keyframes, excluded.get(video_id, set()), rejects)
        if row is not None:
            rows.append(row)
        report(on_progress, done, len(jobs))

    manifest = pa.Table.from_pylist(sorted(rows, key=lambda r: r["video_id"]), schema=MANIFEST_SCHEMA)
    reject_rows = sorted(
        (
            {"video_id": r.video_id, "path": r.path, "split": r.split, "kind": r.kind, "reason": r.reason,
             "timestamps": sorted(r.timestamps)}
            for r in rejects
        ),
        key=lambda r: (r["video_id"], r["kind"], r["path"] or "", r["reason"]),
    )
    rejects_table = pa.Table.from_pylist(reject_rows, schema=REJECTS_SCHEMA)

    content_hash = table_hash(manifest)
    config_hash = config.config_hash()
    meta = {
        "stad.schema": f"manifest/{SCHEMA_VERSION}",
        "stad.config_hash": config_hash,
        "stad.content_hash": content_hash,
        "stad.keyframes": config.keyframes,
        "stad.time_offset": repr(config.time_offset),
        **labelmap_meta,
    }
    out_dir = Path(config.out_dir)
    manifest_path = _write_parquet(manifest, out_dir / "manifest.parquet", meta)
    rejects_path = _write_parquet(
        rejects_table, out_dir / "rejects.parquet", {**meta, "stad.schema": f"rejects/{SCHEMA_VERSION}"}
    )

    per_split: dict[str, int] = {}
    for split in manifest.column("split").to_pylist():
        per_split[split] = per_split.get(split, 0) + 1
    per_kind: dict[str, int] = {}
    for kind in rejects_table.column("kind").to_pylist():
        per_kind[kind] = per_kind.get(kind, 0) + 1
    return ManifestResult(
        manifest_path=str(manifest_path),
        rejects_path=str(rejects_path),
        num_videos=manifest.num_rows,
        num_keyframes=int(sum(manifest.column("num_keyframes").to_pylist())),
        num_rejects=rejects_table.num_rows,
        videos_per_split=dict(sorted(per_split.items())),
        rejects_per_kind=dict(sorted(per_kind.items())),
        content_hash=content_hash,
        config_hash=config_hash,
        warnings=tuple(warnings),
    )


def _ingest_video(
    config: IngestConfig,
    video_id: str,
    path: Path,
    split: str,
    keyframes: list[float],
    excluded: set[float],
    rejects: list[_Reject],
) -> dict[str, object] | None:
    """Probe one video and filter its keyframes; a problem becomes a reject row (returns None)."""

    def reject(kind: str, reason: str, stamps: Iterable[float] = ()) -> None:
        rejects.append(_Reject(video_id, kind, reason, path=str(path), split=split, timestamps=list(stamps)))

    try:
        info = probe(path)
    except VideoError as exc:
        reject("unreadable_video", _problem(exc))
        return None

    stamps = np.asarray(keyframes, dtype=np.float64)
    keep = np.ones(stamps.shape, dtype=bool)
    checks: list[tuple[str, np.ndarray, Callable[[np.ndarray], str]]] = []
    if excluded and not config.bank_excluded:
        checks.append(("excluded", np.isin(stamps, sorted(excluded)), lambda s: f"{_keyframes(len(s))} listed in an exclusions file"))
    if config.keyframe_range is not None:
        lo, hi = config.keyframe_range
        checks.append((
            "keyframe_outside_range",
            (stamps < lo) | (stamps > hi),
            lambda s: f"{_keyframes(len(s))} outside keyframe_range {lo}..{hi}",
        ))
    video_t = stamps - config.time_offset
    checks.append((
        "keyframe_outside_video",
        (video_t < 0) | (video_t >= info.duration),
        lambda s: (
            f"{_keyframes(len(s))} outside the video (0 to {info.duration:.3f} s"
            + (f" after subtracting time_offset {config.time_offset:g})" if config.time_offset else ")")
        ),
    ))
    for kind, bad, describe in checks:
        bad = bad & keep  # each keyframe is reported once, under its first reason
        if bad.any():
            reject(kind, describe(stamps[bad]), stamps[bad].tolist())
            keep &= ~bad
    stamps, video_t = stamps[keep], video_t[keep]
    if stamps.size == 0:
        reject("no_keyframes", "no usable keyframe is left (see the other rejects of this video)")
        return None

    if config.verify_decode:
        probes = video_t[[0, stamps.size // 2, -1]]
        try:
            decode_frames_at(path, probes, short_side=min(64, info.width, info.height))
        except VideoError as exc:
            reject("unreadable_video", _problem(exc))
            return None

    return {
        "video_id": video_id,
        "path": str(path),
        "split": split,
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "num_frames": info.num_frames,
        "duration": info.duration,
        "start_time": info.start_time,
        "variable_frame_rate": info.variable_frame_rate,
        "keyframes": stamps.tolist(),
        "keyframe_times": video_t.tolist(),
        "num_keyframes": int(stamps.size),
        "file_size": os.path.getsize(path),
    }


def _keyframes(n: int) -> str:
    return "1 keyframe is" if n == 1 else f"{n} keyframes are"


def _problem(exc: InputFileError) -> str:
    return exc.problem + (f" ({exc.hint})" if exc.hint else "")


def _check_labelmap(path: str | None) -> dict[str, str]:
    if path is None:
        return {}
    labelmap = read_labelmap(path)
    return {"stad.labelmap": str(path), "stad.num_classes": str(len(labelmap))}


def table_hash(table: pa.Table) -> str:
    """sha256 (16 hex digits) of a table's rows in canonical JSON: independent of parquet
    writer versions and file metadata, equal for equal content."""
    text = json.dumps(
        {"schema": [f"{f.name}:{f.type}" for f in table.schema], "rows": table.to_pylist()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_parquet(table: pa.Table, path: Path, meta: dict[str, str]) -> Path:
    """Write ``table`` with ``meta`` as its schema metadata, atomically."""
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


# ----------------------------------------------------------------------------------------------
# Reading


def _read_checked(path: str | Path, schema: pa.Schema, what: str) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"{what} not found", hint="run `stad ingest` first")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(path, f"not a readable parquet file ({exc})") from None
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise InputFileError(path, f"not a stad {what}: missing columns {missing}")
    bad = [
        f"{f.name} is {table.schema.field(f.name).type}, expected {f.type}"
        for f in schema
        if not table.schema.field(f.name).type.equals(f.type)
    ]
    if bad:
        raise InputFileError(path, f"not a stad {what}: " + "; ".join(bad))
    return table.select(schema.names)


def read_manifest(path: str | Path) -> pa.Table:
    """Read and check a manifest (columns and types of ``MANIFEST_SCHEMA``, in that order).

    The file's metadata (``table.schema.metadata``) keeps ``stad.content_hash`` and
    ``stad.config_hash``. Raises ``InputFileError`` for a missing or foreign file.
    """
    table = _read_checked(path, MANIFEST_SCHEMA, "manifest")
    meta = pq.read_schema(path).metadata or {}
    return table.replace_schema_metadata(meta)


def read_rejects(path: str | Path) -> pa.Table:
    """Read and check a rejects table (``REJECTS_SCHEMA``)."""
    return _read_checked(path, REJECTS_SCHEMA, "rejects table")


def manifest_entries(table: pa.Table) -> list[ManifestEntry]:
    """The manifest's rows as typed entries (the per-video loop of later stages)."""
    out = []
    for row in table.to_pylist():
        info = VideoInfo(
            path=row["path"], codec=row["codec"], width=row["width"], height=row["height"], fps=row["fps"],
            num_frames=row["num_frames"], duration=row["duration"], start_time=row["start_time"],
            variable_frame_rate=row["variable_frame_rate"],
        )
        out.append(
            ManifestEntry(
                video_id=row["video_id"], path=row["path"], split=row["split"], info=info,
                keyframes=np.asarray(row["keyframes"], dtype=np.float64),
                keyframe_times=np.asarray(row["keyframe_times"], dtype=np.float64),
                file_size=row["file_size"],
            )
        )
    return out

