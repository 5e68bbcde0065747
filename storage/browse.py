"""Inspecting banks: summaries, timelines, row statistics, nearest neighbours (used by ``stad bank``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stad_core.banks import ROW_KINDS, BankError
from stad_core.progress import ProgressFn, report
from storage.banks import ROOT_KEY, ZarrBank


def find_banks(root: str | Path, *, max_depth: int = 4) -> list[Path]:
    """Local directories under ``root`` (itself included) that are stad banks."""
    root = Path(root)
    found: list[Path] = []

    def walk(path: Path, depth: int) -> None:
        meta = path / "zarr.json"
        if meta.is_file():
            try:
                if ROOT_KEY in json.loads(meta.read_text()).get("attributes", {}):
                    found.append(path)
                    return  # do not descend into a bank's videos
            except (OSError, ValueError):
                pass
        if depth < max_depth:
            for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
                walk(child, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return found


@dataclass(frozen=True)
class VideoSummary:
    video_id: str
    version: str
    rows: int
    first_second: int
    num_seconds: int
    max_per_second: int
    raw_bytes: int
    stored_bytes: int
    source: str


def video_summary(bank: ZarrBank, video_id: str) -> VideoSummary:
    """Counts and sizes of one complete video."""
    info = bank.video_info(video_id)
    raw, stored = bank.sizes(video_id)
    most = int(timeline(bank, video_id).max(initial=0)) if bank.spec.kind in ROW_KINDS else 1
    return VideoSummary(
        video_id, info.version, info.rows, info.first_second, info.num_seconds, most, raw, stored, info.source
    )


@dataclass(frozen=True)
class BankSummary:
    videos: list[VideoSummary]
    incomplete: list[str]  # video ids with no complete version
    stale: list[str]  # leftover version paths

    @property
    def rows(self) -> int:
        return sum(v.rows for v in self.videos)

    @property
    def raw_bytes(self) -> int:
        return sum(v.raw_bytes for v in self.videos)

    @property
    def stored_bytes(self) -> int:
        return sum(v.stored_bytes for v in self.videos)

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 1.0


def bank_summary(bank: ZarrBank, *, on_progress: ProgressFn | None = None) -> BankSummary:
    """Summaries of every video (lists the bank: O(videos))."""
    ids = bank.all_video_ids()
    videos, incomplete = [], []
    for i, vid in enumerate(ids):
        if bank.is_complete(vid):
            videos.append(video_summary(bank, vid))
        else:
            incomplete.append(vid)
        report(on_progress, i + 1, len(ids))
    return BankSummary(videos, incomplete, bank.stale_versions())


def timeline(bank: ZarrBank, video_id: str) -> np.ndarray:
    """Rows per second [T] from the video's first second (``video_info().first_second``)."""
    state = bank._video(video_id)
    return np.diff(state.index.offsets)


@dataclass(frozen=True)
class RowStats:
    """One row: where it is and what its feature vector looks like."""

    row: int
    timestamp: float
    box: tuple[float, float, float, float]
    score: float
    person_id: int
    norm: float
    mean: float
    std: float
    min: float
    max: float
    zero_fraction: float


def row_stats(bank: ZarrBank, video_id: str, row: int) -> RowStats:
    """Box, score and feature statistics of row ``row`` (time-sorted numbering)."""
    info = bank.video_info(video_id)
    if not 0 <= row < info.rows:
        raise BankError(f"video {video_id!r} has rows 0..{info.rows - 1}, not {row}")
    rows = bank._rows(bank._video(video_id), np.array([row]))
    f = rows.features[0].astype(np.float64)
    return RowStats(
        row, float(rows.timestamps[0]), tuple(float(x) for x in rows.boxes[0]),  # type: ignore[arg-type]
        float(rows.scores[0]), int(rows.person_ids[0]), float(np.linalg.norm(f)), float(f.mean()),
        float(f.std()), float(f.min()), float(f.max()), float(np.mean(f == 0)),
    )


@dataclass(frozen=True)
class Neighbour:
    video_id: str
    row: int
    timestamp: float
    person_id: int
    similarity: float


def nearest_neighbours(
    bank: ZarrBank, video_id: str, row: int, *, k: int = 5, videos: list[str] | None = None,
    on_progress: ProgressFn | None = None,
) -> list[Neighbour]:
    """The ``k`` rows most cosine-similar to (video_id, row), scanning ``videos`` (default: all)
    chunk by chunk so memory stays at one chunk; the query row itself is excluded."""
    query = bank._rows(bank._video(video_id), np.array([row])).features[0].astype(np.float32)
    qn = query / max(float(np.linalg.norm(query)), 1e-12)
    best: list[tuple[float, str, int]] = []
    ids = videos if videos is not None else bank.videos()
    for i, vid in enumerate(ids):
        state = bank._video(vid)
        n = state.info.rows
        for c in range(0, -(-n // state.chunk)):
            block = bank._chunk(state, c).astype(np.float32)
            sims = block @ qn / np.maximum(np.linalg.norm(block, axis=1), 1e-12)
            base = c * state.chunk
            if vid == video_id and base <= row < base + len(block):
                sims[row - base] = -np.inf
            top = np.argsort(-sims)[:k]
            best += [(float(sims[j]), vid, base + int(j)) for j in top if np.isfinite(sims[j])]
            best = sorted(best, reverse=True)[:k]
        report(on_progress, i + 1, len(ids))
    out = []
    for sim, vid, r in best:
        state = bank._video(vid)
        pid = int(bank._small(state)["person_ids"][r])
        out.append(Neighbour(vid, r, float(state.timestamps[r]), pid, sim))
    return out


@dataclass(frozen=True)
class FeatureStats:
    """Feature statistics over every complete row of a bank (float64 accumulation, chunk by chunk).

    ``channel_mean``/``channel_std`` are ``[D]``; ``dead_channels`` counts channels that are zero
    in every row; ``nonfinite`` counts NaN/inf values (a healthy bank has none).
    """

    rows: int
    mean: float
    std: float
    min: float
    max: float
    norm_mean: float
    norm_min: float
    norm_max: float
    zero_fraction: float
    nonfinite: int
    dead_channels: int
    channel_mean: np.ndarray
    channel_std: np.ndarray


def feature_stats(bank: ZarrBank, *, videos: list[str] | None = None,
                  on_progress: ProgressFn | None = None) -> FeatureStats:
    """Statistics of the feature rows of ``videos`` (default: every complete one); memory: one chunk.
    Context banks count each keyframe's pooled map (channels averaged over the grid) as a row."""
    d = bank.spec.feature_dim
    n = 0
    s1 = np.zeros(d)
    s2 = np.zeros(d)
    lo, hi = np.inf, -np.inf
    zeros = nonfinite = 0
    nonzero = np.zeros(d, bool)
    norms: list[np.ndarray] = []
    ids = videos if videos is not None else bank.videos()
    for i, vid in enumerate(ids):
        if bank.spec.kind in ROW_KINDS:
            state = bank._video(vid)
            blocks = (bank._chunk(state, c) for c in range(-(-state.info.rows // state.chunk)))
        else:
            maps = dict(bank.arrays(vid))["maps"]  # [K, C, h, w]: 64 keyframes at a time
            blocks = (np.asarray(maps[k:k + 64], np.float64).reshape(-1, d, maps.shape[2] * maps.shape[3]).mean(axis=2)
                      for k in range(0, maps.shape[0], 64))
        for block in blocks:
            x = np.asarray(block, np.float64).reshape(-1, d)
            bad = ~np.isfinite(x)
            nonfinite += int(bad.sum())
            x = np.where(bad, 0.0, x)
            n += len(x)
            s1 += x.sum(axis=0)
            s2 += (x * x).sum(axis=0)
            if x.size:
                lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
            zeros += int((x == 0).sum())
            nonzero |= (x != 0).any(axis=0)
            norms.append(np.linalg.norm(x, axis=1))
        report(on_progress, i + 1, len(ids))
    if n == 0:
        empty = np.zeros(d)
        return FeatureStats(0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), float("nan"),
                            float("nan"), float("nan"), 0, 0, empty, empty)
    mean_c = s1 / n
    std_c = np.sqrt(np.maximum(s2 / n - mean_c ** 2, 0.0))
    total_mean = float(s1.sum() / (n * d))
    total_std = float(np.sqrt(max(s2.sum() / (n * d) - total_mean ** 2, 0.0)))
    all_norms = np.concatenate(norms)
    return FeatureStats(n, total_mean, total_std, lo, hi, float(all_norms.mean()), float(all_norms.min()),
                        float(all_norms.max()), zeros / (n * d), nonfinite, int((~nonzero).sum()), mean_c, std_c)
