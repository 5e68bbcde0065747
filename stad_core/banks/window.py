"""Long-term windows: the per-second index of a video's rows, the window planner and the value
types a window is returned in. One numpy implementation shared by every bank layout, so all return
identical windows (semantics in the :mod:`stad_core.banks` docstring)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stad_core.banks.spec import BankError, BankSpec


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


def assemble_window(
    features_of: Callable[[np.ndarray], np.ndarray], video_id: str, index: SecondIndex, timestamps: np.ndarray,
    t: float, *, width: int, per_second: int, training: bool, rng: np.random.Generator | None,
    feature_dim: int, dtype: np.dtype,
) -> BankWindow:
    """Build a :class:`BankWindow` from a plan; ``features_of(rows [N]) -> [N, D]`` fetches rows.

    Shared by :class:`~stad_core.banks.DictBank` and the zarr bank so both return identical windows.
    """
    gen = window_rng(video_id, t, training=training, rng=rng)
    rows, mask = plan_window(index, t, width=width, per_second=per_second, rng=gen)
    feats = np.zeros((rows.shape[0], feature_dim), dtype)
    ts = np.full(rows.shape[0], np.nan)
    if mask.any():
        feats[mask] = features_of(rows[mask])
        ts[mask] = timestamps[rows[mask]]
    return BankWindow(feats, mask, ts, rows)


def stack_windows(windows: Sequence[BankWindow], slots: int, spec: BankSpec) -> WindowBatch:
    """Stack windows into a :class:`WindowBatch` (B may be 0; ``slots`` = W*K)."""
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
