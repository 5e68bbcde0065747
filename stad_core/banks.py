"""Feature banks as seen by the rest of stad: spec, value types, Protocols, window sampling.

The zarr implementation lives in ``storage.banks``; this module is numpy/pydantic only so that
heads, trainers and tests can work against :class:`FeatureBankReader` and pass a :class:`DictBank`.

Conventions (defined once, here):

* A row is one actor at one keyframe: ``features[D]``, ``boxes[4]`` (normalised xyxy, float32),
  ``score``, ``timestamp`` (keyframe seconds, float64), ``person_id`` (int64, -1 unknown).
* Rows are kept sorted by timestamp. A row belongs to the **second** ``floor(timestamp)``.
* The long-term window of keyframe ``t`` (width ``w``, ``K`` rows per second) covers the ``w``
  seconds ``[floor(t) - w//2, floor(t) - w//2 + w)`` -- for w=60 and t=902: 872..931. Each second
  contributes its rows if it has at most K, else a random subset of K (kept in time order).
  Empty slots are *masked*, never silently zero-padded: ``mask`` is False there (features are 0).
* Training draws the subsets from the caller's ``rng``; evaluation draws them from a generator
  seeded by :func:`eval_seed` ``(video_id, t)`` so the same keyframe always sees the same window.
* One window per keyframe: all actors of a keyframe share it (LFB samples per clip).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stad_core.errors import StadError

BankKind = Literal["long_term", "context", "actor_context"]
BankDtype = Literal["float16", "float32"]
ROW_KINDS: tuple[BankKind, ...] = ("long_term", "actor_context")
SCHEMA_VERSION = 1
#: Two timestamps closer than this are the same keyframe (pts jitter, float round-trips).
TIME_TOLERANCE = 1e-3


class BankError(StadError):
    """A feature bank cannot do what was asked (bad spec, bad rows, unknown video, ...)."""


class BankSpec(BaseModel):
    """Identity of a bank: everything that must match for rows to be comparable.

    Stored in the bank's root attributes; appending with a different spec is refused with
    :meth:`diff`'s list of differing fields.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: BankKind
    feature_dim: int = Field(gt=0)
    dtype: BankDtype = "float16"
    backbone: str
    checkpoint_sha256: str
    roi_recipe: str = "roi_align7_tavg_smax"
    #: Pooling grid (h, w) of context maps; required for ``kind="context"``, None otherwise.
    context_grid: tuple[int, int] | None = None
    clip_num_frames: int = Field(32, gt=0)
    clip_stride: int = Field(2, gt=0)
    detector_source: str = "gt"
    detector_threshold: float = 0.0
    code_version: str = "0.1.0"
    schema_version: int = SCHEMA_VERSION

    @model_validator(mode="after")
    def _grid_matches_kind(self) -> BankSpec:
        if self.kind == "context":
            if self.context_grid is None or min(self.context_grid) <= 0:
                raise ValueError("a context bank needs context_grid=(h, w) with h, w > 0")
        elif self.context_grid is not None:
            raise ValueError(f"context_grid is only for context banks, not {self.kind!r}")
        return self

    def diff(self, other: BankSpec) -> list[str]:
        """Names of fields whose values differ, formatted ``name: mine != theirs``."""
        mine, theirs = self.model_dump(), other.model_dump()
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

    def to_attrs(self) -> dict[str, Any]:
        """JSON-safe dict for zarr attributes."""
        return self.model_dump(mode="json")

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> BankSpec:
        data = dict(attrs)
        if data.get("context_grid") is not None:
            data["context_grid"] = tuple(data["context_grid"])
        return cls.model_validate(data)

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


@dataclass(frozen=True)
class ActorRows:
    """Rows of one video (or one keyframe) of a long-term / actor-context bank.

    Shapes (R rows, D = spec.feature_dim):
        features   [R, D]  float16/float32
        boxes      [R, 4]  float32, normalised xyxy in [0, 1]
        scores     [R]     float32 (detector score; 1.0 for ground truth)
        timestamps [R]     float64 keyframe seconds in the video's own timeline
        person_ids [R]     int64, -1 = unknown
        source     str     where the boxes came from ("gt", "detector:...", "proposals:...")
    """

    features: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    timestamps: np.ndarray
    person_ids: np.ndarray
    source: str = "unknown"

    @classmethod
    def empty(cls, feature_dim: int, dtype: str = "float32", source: str = "unknown") -> ActorRows:
        """A video with no actors (R = 0)."""
        return cls(
            np.zeros((0, feature_dim), dtype),
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.float64),
            np.zeros(0, np.int64),
            source,
        )

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def take(self, index: np.ndarray | slice) -> ActorRows:
        """Rows at ``index`` (same source)."""
        return ActorRows(
            self.features[index],
            self.boxes[index],
            self.scores[index],
            self.timestamps[index],
            self.person_ids[index],
            self.source,
        )


@dataclass(frozen=True)
class ContextMaps:
    """Pooled clip feature maps of one video, one per keyframe.

    Shapes: maps [K, C, h, w] (spec dtype), timestamps [K] float64 keyframe seconds.
    """

    maps: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return int(self.maps.shape[0])


@dataclass(frozen=True)
class BankWindow:
    """The long-term window of one keyframe (W = width seconds, K = per_second).

    Shapes: features [W*K, D], mask [W*K] bool (True = a real row), timestamps [W*K] float64
    (NaN where masked), rows [W*K] int64 row numbers in the video (-1 where masked).
    Slot ``s*K + j`` is the j-th sampled row of the window's s-th second.
    """

    features: np.ndarray
    mask: np.ndarray
    timestamps: np.ndarray
    rows: np.ndarray


@dataclass(frozen=True)
class WindowBatch:
    """Windows of B keyframes: features [B, W*K, D], mask [B, W*K] bool, timestamps [B, W*K].

    Unpacks as ``features, mask = batch`` (what a DataLoader collate wants).
    """

    features: np.ndarray
    mask: np.ndarray
    timestamps: np.ndarray

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.features
        yield self.mask

    def to_torch(self) -> tuple[Any, Any]:
        """(features, mask) as torch tensors sharing this batch's memory (no copy)."""
        import torch

        return torch.from_numpy(self.features), torch.from_numpy(self.mask)


# --------------------------------------------------------------------------- window sampling
@dataclass(frozen=True)
class SecondIndex:
    """Per-second offsets of a video's time-sorted rows.

    ``offsets`` [T+1] int64: rows of second ``first_second + i`` are ``offsets[i]:offsets[i+1]``.
    An empty video has ``offsets == [0]`` and T = 0.
    """

    first_second: int
    offsets: np.ndarray = field(repr=False)

    @property
    def num_seconds(self) -> int:
        return int(self.offsets.shape[0]) - 1

    def row_range(self, first: int, stop: int) -> tuple[int, int]:
        """Row slice [a, b) covering seconds [first, stop) (clipped to the video)."""
        n = self.num_seconds
        i = min(max(first - self.first_second, 0), n)
        j = min(max(stop - self.first_second, 0), n)
        return int(self.offsets[i]), int(self.offsets[j])


def second_index(timestamps: np.ndarray) -> SecondIndex:
    """Bucket time-sorted ``timestamps`` [R] by ``floor`` into a :class:`SecondIndex`."""
    ts = np.asarray(timestamps, np.float64)
    if ts.size == 0:
        return SecondIndex(0, np.zeros(1, np.int64))
    if np.any(np.diff(ts) < 0):
        raise BankError("timestamps must be sorted (sort rows with sort_rows first)")
    seconds = np.floor(ts).astype(np.int64)
    first, last = int(seconds[0]), int(seconds[-1])
    edges = np.arange(first, last + 2, dtype=np.int64)
    return SecondIndex(first, np.searchsorted(seconds, edges, side="left").astype(np.int64))


def eval_seed(video_id: str, t: float) -> int:
    """Stable 64-bit seed of a keyframe (same on every machine and run, unlike ``hash``)."""
    key = f"{video_id},{t:.3f}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def window_seconds(t: float, width: int) -> tuple[int, int]:
    """Seconds [first, stop) of the window centred on keyframe ``t``."""
    first = math.floor(t) - width // 2
    return first, first + width


def plan_window(
    index: SecondIndex,
    t: float,
    *,
    width: int,
    per_second: int,
    rng: np.random.Generator | int,
) -> tuple[np.ndarray, np.ndarray]:
    """Choose the rows of one window: (rows [W*K] int64 with -1 for empty slots, mask [W*K]).

    Vectorised over the W seconds. Seconds with <= K rows contribute all of them (no draw); when
    some second has more, each of its rows gets a random key from ``rng`` (a generator, or a seed
    turned into one only when needed) and the K smallest are kept, in time order.
    """
    if width <= 0 or per_second <= 0:
        raise BankError(f"window width ({width}) and per_second ({per_second}) must be positive")
    k = per_second
    n = index.num_seconds
    if n == 0:
        return np.full(width * k, -1, np.int64), np.zeros(width * k, bool)
    first, _ = window_seconds(t, width)
    rel = np.arange(width, dtype=np.int64) + (first - index.first_second)  # [W]
    inside = (rel >= 0) & (rel < n)
    relc = np.clip(rel, 0, n - 1)
    start = np.where(inside, index.offsets[relc], 0)
    count = np.where(inside, index.offsets[relc + 1] - start, 0)
    widest = int(count.max())
    slots = np.arange(k)
    if widest <= k:
        picked = np.broadcast_to(slots, (width, k))
    else:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        keys = gen.random((width, widest))
        keys[np.arange(widest)[None, :] >= count[:, None]] = np.inf  # never past the second's rows
        picked = np.sort(np.argsort(keys, axis=1, kind="stable")[:, :k], axis=1)  # [W, K]
    valid = slots[None, :] < np.minimum(count, k)[:, None]  # [W, K]
    rows = np.where(valid, start[:, None] + picked, -1)
    return rows.reshape(-1), valid.reshape(-1)


def window_rng(
    video_id: str, t: float, *, training: bool, rng: np.random.Generator | None
) -> np.random.Generator | int:
    """What a window draws from: the caller's generator (training) or the keyframe's seed (eval)."""
    if training:
        return rng if rng is not None else np.random.default_rng()
    return eval_seed(video_id, t)


def sort_rows(rows: ActorRows) -> ActorRows:
    """Rows in time order (stable: rows of one keyframe keep their order)."""
    order = np.argsort(np.asarray(rows.timestamps, np.float64), kind="stable")
    if np.all(order == np.arange(len(order))):
        return rows
    return rows.take(order)


def check_rows(rows: ActorRows, spec: BankSpec, video_id: str) -> ActorRows:
    """Validate shapes/dtypes against ``spec``; return rows cast to the bank's dtypes, time-sorted.

    Raises :class:`BankError` naming the video, the array and what was expected.
    """
    where = f"video {video_id!r}"
    if spec.kind not in ROW_KINDS:
        raise BankError(f"{where}: a {spec.kind} bank stores context maps; use write_context")
    f = np.asarray(rows.features)
    if f.ndim != 2 or f.shape[1] != spec.feature_dim:
        raise BankError(
            f"{where}: features have shape {f.shape}, the bank expects [R, {spec.feature_dim}] "
            "(check the backbone/feature_dim of the bank spec)"
        )
    if not np.issubdtype(f.dtype, np.floating):
        raise BankError(f"{where}: features must be floating point, got {f.dtype}")
    r = f.shape[0]
    expected = {"boxes": (r, 4), "scores": (r,), "timestamps": (r,), "person_ids": (r,)}
    for name, shape in expected.items():
        got = np.shape(getattr(rows, name))
        if got != shape:
            raise BankError(f"{where}: {name} has shape {got}, expected {shape} for {r} rows")
    if not np.issubdtype(np.asarray(rows.person_ids).dtype, np.integer):
        raise BankError(f"{where}: person_ids must be integers (-1 for unknown)")
    if not np.all(np.isfinite(f)):
        raise BankError(f"{where}: features contain NaN/inf; refusing to store them")
    if r and not np.all(np.isfinite(rows.timestamps)):
        raise BankError(f"{where}: timestamps contain NaN/inf")
    cast = ActorRows(
        f.astype(spec.numpy_dtype, copy=False),
        np.asarray(rows.boxes, np.float32),
        np.asarray(rows.scores, np.float32),
        np.asarray(rows.timestamps, np.float64),
        np.asarray(rows.person_ids, np.int64),
        str(rows.source),
    )
    return sort_rows(cast)


def check_context(maps: ContextMaps, spec: BankSpec, video_id: str) -> ContextMaps:
    """Validate context maps against ``spec``; return them cast and time-sorted."""
    where = f"video {video_id!r}"
    if spec.kind != "context" or spec.context_grid is None:
        raise BankError(f"{where}: a {spec.kind} bank stores actor rows; use write_video")
    m = np.asarray(maps.maps)
    h, w = spec.context_grid
    if m.ndim != 4 or m.shape[1:] != (spec.feature_dim, h, w):
        raise BankError(
            f"{where}: context maps have shape {m.shape}, the bank expects "
            f"[K, {spec.feature_dim}, {h}, {w}] (check context_grid/feature_dim)"
        )
    if not np.issubdtype(m.dtype, np.floating) or not np.all(np.isfinite(m)):
        raise BankError(f"{where}: context maps must be finite floating point values")
    ts = np.asarray(maps.timestamps, np.float64)
    if ts.shape != (m.shape[0],):
        raise BankError(f"{where}: timestamps have shape {ts.shape}, expected ({m.shape[0]},)")
    order = np.argsort(ts, kind="stable")
    return ContextMaps(m.astype(spec.numpy_dtype, copy=False)[order], ts[order])


def find_keyframe(timestamps: np.ndarray, t: float) -> int | None:
    """Index of the sorted ``timestamps`` entry within TIME_TOLERANCE of ``t``, else None."""
    i = int(np.searchsorted(timestamps, t - TIME_TOLERANCE, side="left"))
    if i < len(timestamps) and abs(float(timestamps[i]) - t) <= TIME_TOLERANCE:
        return i
    return None


# --------------------------------------------------------------------------- Protocols
@runtime_checkable
class FeatureBankReader(Protocol):
    """What heads, trainers and evaluation need from a bank (zarr bank or :class:`DictBank`)."""

    @property
    def spec(self) -> BankSpec: ...

    def videos(self) -> list[str]:
        """Ids of the complete videos, sorted."""
        ...

    def read_video(self, video_id: str) -> ActorRows:
        """All rows of a video, time-sorted."""
        ...

    def rows_at(self, video_id: str, t: float) -> ActorRows:
        """The rows of keyframe ``t`` itself (timestamp within TIME_TOLERANCE)."""
        ...

    def window(
        self,
        video_id: str,
        t: float,
        *,
        width: int = 60,
        per_second: int = 5,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> BankWindow:
        """Long-term window of keyframe ``t`` (see module docstring)."""
        ...

    def gather_windows(
        self,
        keys: Sequence[tuple[str, float]],
        *,
        width: int = 60,
        per_second: int = 5,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> WindowBatch:
        """Windows of many keyframes ``(video_id, t)``: features [B, W*K, D], mask [B, W*K]."""
        ...

    def context(self, video_id: str, t: float) -> np.ndarray:
        """Context map [C, h, w] of keyframe ``t``."""
        ...


@runtime_checkable
class FeatureBankWriter(Protocol):
    """What extraction (and ACFB) need to fill a bank, one video at a time."""

    @property
    def spec(self) -> BankSpec: ...

    def is_complete(self, video_id: str) -> bool:
        """True once a complete version of the video is visible to readers."""
        ...

    def video_meta(self, video_id: str) -> dict[str, Any]:
        """The ``meta`` stored with the video's complete version (e.g. input hashes for resume)."""
        ...

    def write_video(
        self, video_id: str, rows: ActorRows, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Write (or atomically replace) a video's rows; visible only once fully written."""
        ...

    def write_context(
        self, video_id: str, maps: ContextMaps, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Write (or atomically replace) a video's context maps."""
        ...

    def delete_video(self, video_id: str) -> None:
        """Remove a video (all versions)."""
        ...


# --------------------------------------------------------------------------- in-memory bank
def assemble_window(
    features_of: Any, video_id: str, index: SecondIndex, timestamps: np.ndarray, t: float, *,
    width: int, per_second: int, training: bool, rng: np.random.Generator | None,
    feature_dim: int, dtype: np.dtype,
) -> BankWindow:
    """Build a :class:`BankWindow` from a plan; ``features_of(rows [N]) -> [N, D]`` fetches rows.

    Shared by :class:`DictBank` and the zarr bank so both return identical windows.
    """
    gen = window_rng(video_id, t, training=training, rng=rng)
    rows, mask = plan_window(index, t, width=width, per_second=per_second, rng=gen)
    feats = np.zeros((rows.shape[0], feature_dim), dtype)
    ts = np.full(rows.shape[0], np.nan)
    if mask.any():
        feats[mask] = features_of(rows[mask])
        ts[mask] = timestamps[rows[mask]]
    return BankWindow(feats, mask, ts, rows)


class DictBank:
    """A :class:`FeatureBankReader` (and writer) over plain dicts, for tests of heads and trainers.

    ``DictBank(spec, {"vid": ActorRows(...)})`` or, for context banks, ``contexts={"vid": ContextMaps}``.
    Rows are validated and time-sorted like the zarr bank does; windows are sampled by the same code.
    """

    def __init__(
        self,
        spec: BankSpec,
        videos: Mapping[str, ActorRows] | None = None,
        *,
        contexts: Mapping[str, ContextMaps] | None = None,
    ) -> None:
        self._spec = spec
        self._rows: dict[str, tuple[ActorRows, SecondIndex]] = {}
        self._contexts: dict[str, ContextMaps] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        for vid, rows in (videos or {}).items():
            self.write_video(vid, rows)
        for vid, maps in (contexts or {}).items():
            self.write_context(vid, maps)

    @property
    def spec(self) -> BankSpec:
        return self._spec

    # writer side
    def is_complete(self, video_id: str) -> bool:
        return video_id in self._rows or video_id in self._contexts

    def video_meta(self, video_id: str) -> dict[str, Any]:
        self._require(video_id)
        return dict(self._meta.get(video_id, {}))

    def write_video(
        self, video_id: str, rows: ActorRows, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        rows = check_rows(rows, self._spec, video_id)
        self._rows[video_id] = (rows, second_index(rows.timestamps))
        self._meta[video_id] = dict(meta or {})

    def write_context(
        self, video_id: str, maps: ContextMaps, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        self._contexts[video_id] = check_context(maps, self._spec, video_id)
        self._meta[video_id] = dict(meta or {})

    def delete_video(self, video_id: str) -> None:
        self._rows.pop(video_id, None)
        self._contexts.pop(video_id, None)
        self._meta.pop(video_id, None)

    # reader side
    def videos(self) -> list[str]:
        return sorted(set(self._rows) | set(self._contexts))

    def _require(self, video_id: str) -> None:
        if not self.is_complete(video_id):
            raise BankError(f"video {video_id!r} is not in this bank (known: {len(self.videos())})")

    def _video(self, video_id: str) -> tuple[ActorRows, SecondIndex]:
        if self._spec.kind not in ROW_KINDS:
            raise BankError(f"a {self._spec.kind} bank has no actor rows; use context()")
        self._require(video_id)
        return self._rows[video_id]

    def read_video(self, video_id: str) -> ActorRows:
        return self._video(video_id)[0]

    def rows_at(self, video_id: str, t: float) -> ActorRows:
        rows, _ = self._video(video_id)
        keep = np.abs(rows.timestamps - t) <= TIME_TOLERANCE
        return rows.take(np.flatnonzero(keep))

    def window(
        self,
        video_id: str,
        t: float,
        *,
        width: int = 60,
        per_second: int = 5,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> BankWindow:
        rows, index = self._video(video_id)
        return assemble_window(
            lambda idx: rows.features[idx], video_id, index, rows.timestamps, t,
            width=width, per_second=per_second, training=training, rng=rng,
            feature_dim=self._spec.feature_dim, dtype=self._spec.numpy_dtype,
        )

    def gather_windows(
        self,
        keys: Sequence[tuple[str, float]],
        *,
        width: int = 60,
        per_second: int = 5,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> WindowBatch:
        wins = [
            self.window(v, t, width=width, per_second=per_second, training=training, rng=rng)
            for v, t in keys
        ]
        return stack_windows(wins, width * per_second, self._spec)

    def context(self, video_id: str, t: float) -> np.ndarray:
        if self._spec.kind != "context":
            raise BankError(f"a {self._spec.kind} bank has no context maps")
        self._require(video_id)
        maps = self._contexts[video_id]
        i = find_keyframe(maps.timestamps, t)
        if i is None:
            raise BankError(f"video {video_id!r} has no context map at t={t}")
        return maps.maps[i]


def stack_windows(windows: Sequence[BankWindow], slots: int, spec: BankSpec) -> WindowBatch:
    """Stack windows into a :class:`WindowBatch` (B may be 0)."""
    if not windows:
        return WindowBatch(
            np.zeros((0, slots, spec.feature_dim), spec.numpy_dtype),
            np.zeros((0, slots), bool),
            np.zeros((0, slots)),
        )
    return WindowBatch(
        np.stack([w.features for w in windows]),
        np.stack([w.mask for w in windows]),
        np.stack([w.timestamps for w in windows]),
    )
