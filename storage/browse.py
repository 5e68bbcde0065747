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
