"""``AvaTable``: the columnar in-memory form of an AVA ground-truth or detection CSV.

One row per (box, action) like the file itself, held as numpy columns -- never one Python object
per row, so an 11M-row detection file costs ~60 bytes a row.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from stad_core.ava.keys import KeyframeKey


@dataclass
class AvaTable:
    """N rows of an AVA CSV (ground truth or detections), column by column.

    Attributes:
        videos: ``[V]`` object array of unique video ids, sorted.
        video_index: ``[N]`` int32 codes into ``videos``.
        timestamp: ``[N]`` float64 seconds as written (integral for AVA v2.x).
        boxes: ``[N, 4]`` float64 normalised ``x1, y1, x2, y2``.
        action_id: ``[N]`` int32 1-based action ids; -1 where the row has none (proposals).
        person_id: ``[N]`` int64 person ids; -1 when absent (7-column files) or unusable.
            A column the file does not have is read as a read-only broadcast view of -1 (no
            memory for 11M detection rows); copy it before writing into it.
        score: ``[N]`` float64 scores for detections, None for ground truth.
        line: ``[N]`` 1-based line numbers in ``source`` (0 for rows built in memory); int64, or
            int32 as the CSV reader builds them (:func:`~stad_core.ava.csv_columns.line_dtype`).
        source: where the rows came from (a path, or ``"<memory>"``).
        boxless: ``(video_id, timestamp)`` of rows that named a keyframe but no box (AVA 2020 /
            AVA-Kinetics style "annotated, nobody there"); only filled when the reader allows them.
        warnings: tolerated problems, each starting with ``file:line:``.
    """

    videos: np.ndarray
    video_index: np.ndarray
    timestamp: np.ndarray
    boxes: np.ndarray
    action_id: np.ndarray
    person_id: np.ndarray
    score: np.ndarray | None
    line: np.ndarray
    source: str = "<memory>"
    boxless: list[tuple[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.video_index)
        shapes = {
            "timestamp": self.timestamp.shape,
            "action_id": self.action_id.shape,
            "person_id": self.person_id.shape,
            "line": self.line.shape,
        }
        if self.score is not None:
            shapes["score"] = self.score.shape
        bad = {name: shape for name, shape in shapes.items() if shape != (n,)}
        if self.boxes.shape != (n, 4):
            bad["boxes"] = self.boxes.shape
        if bad:
            raise ValueError(f"AvaTable columns disagree with video_index length {n}: {bad}")

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        video_id: Sequence[str] | np.ndarray,
        timestamp: Sequence[float] | np.ndarray,
        boxes: Sequence[Sequence[float]] | np.ndarray,
        action_id: Sequence[int] | np.ndarray | None = None,
        person_id: Sequence[int] | np.ndarray | None = None,
        score: Sequence[float] | np.ndarray | None = None,
        *,
        line: Sequence[int] | np.ndarray | None = None,
        source: str = "<memory>",
    ) -> AvaTable:
        """Build a table from per-row columns (video ids as strings; ``[N, 4]`` boxes).

        Missing ``action_id``/``person_id`` become -1, missing ``line`` becomes 0.
        """
        vids = np.asarray(video_id, dtype=object)
        n = len(vids)
        videos, codes = np.unique(vids.astype(str), return_inverse=True) if n else (np.array([], str), np.zeros(0, int))
        boxes_arr = np.asarray(boxes, dtype=np.float64).reshape(n, 4)

        def column(values: object, dtype: type, default: int) -> np.ndarray:
            if values is None:
                return np.full(n, default, dtype=dtype)
            return np.asarray(values, dtype=dtype).reshape(n)

        return cls(
            videos=videos.astype(object),
            video_index=codes.astype(np.int32),
            timestamp=np.asarray(timestamp, dtype=np.float64).reshape(n),
            boxes=boxes_arr,
            action_id=column(action_id, np.int32, -1),
            person_id=column(person_id, np.int64, -1),
            score=None if score is None else np.asarray(score, dtype=np.float64).reshape(n),
            line=column(line, np.int64, 0),
            source=source,
        )

    @classmethod
    def empty(cls, *, with_score: bool, source: str = "<memory>") -> AvaTable:
        """A table with no rows (a score column iff ``with_score``)."""
        return cls.from_arrays([], [], np.zeros((0, 4)), score=np.zeros(0) if with_score else None, source=source)

    # -- basic access ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.video_index)

    @property
    def is_detections(self) -> bool:
        """True when the table has a score column."""
        return self.score is not None

    @property
    def video_id(self) -> np.ndarray:
        """``[N]`` object array of each row's video id (materialised on demand)."""
        return self.videos[self.video_index]

    def select(self, rows: np.ndarray | Sequence[int] | slice) -> AvaTable:
        """Rows picked by a boolean mask ``[N]``, an index array or a slice (same vocabulary)."""
        if not isinstance(rows, slice):
            rows = np.asarray(rows)
            if rows.dtype == bool and rows.shape != (len(self),):
                raise ValueError(f"mask has shape {rows.shape}, expected ({len(self)},)")
        return AvaTable(
            videos=self.videos,
            video_index=self.video_index[rows],
            timestamp=self.timestamp[rows],
            boxes=self.boxes[rows],
            action_id=self.action_id[rows],
            person_id=self.person_id[rows],
            score=None if self.score is None else self.score[rows],
            line=self.line[rows],
            source=self.source,
            boxless=list(self.boxless),
            warnings=list(self.warnings),
        )

    @staticmethod
    def concat(tables: Sequence[AvaTable]) -> AvaTable:
        """Stack tables row-wise, merging their video vocabularies (all or none need scores)."""
        if not tables:
            raise ValueError("concat needs at least one table")
        with_score = {t.score is not None for t in tables}
        if len(with_score) != 1:
            raise ValueError("cannot concatenate ground-truth tables (no score) with detection tables")
        videos = np.unique(np.concatenate([t.videos.astype(str) for t in tables])).astype(object)
        sorted_names = videos.astype(str)
        remapped = [
            np.searchsorted(sorted_names, t.videos.astype(str)).astype(np.int32)[t.video_index] for t in tables
        ]
        sources = list(dict.fromkeys(t.source for t in tables))
        return AvaTable(
            videos=videos,
            video_index=np.concatenate(remapped) if remapped else np.zeros(0, np.int32),
            timestamp=np.concatenate([t.timestamp for t in tables]),
            boxes=np.concatenate([t.boxes for t in tables]).reshape(-1, 4),
            action_id=np.concatenate([t.action_id for t in tables]),
            person_id=np.concatenate([t.person_id for t in tables]),
            score=np.concatenate([t.score for t in tables]) if tables[0].score is not None else None,
            line=np.concatenate([t.line for t in tables]),
            source=" + ".join(sources),
            boxless=[b for t in tables for b in t.boxless],
            warnings=[w for t in tables for w in t.warnings],
        )

    # -- keyframes ------------------------------------------------------------------------------

    def keyframe_groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Group rows by keyframe.

        Returns:
            key_video_index: ``[K]`` int32 video code of each distinct keyframe,
            key_timestamp: ``[K]`` float64 its time,
            inverse: ``[N]`` int64 keyframe number of each row.
            Keyframes are sorted by (video id, timestamp).
        """
        n = len(self)
        if n == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.float64), np.zeros(0, np.int64)
        order = np.lexsort((self.timestamp, self.video_index))
        v, t = self.video_index[order], self.timestamp[order]
        starts = np.ones(n, dtype=bool)
        starts[1:] = (v[1:] != v[:-1]) | (t[1:] != t[:-1])
        group_sorted = np.cumsum(starts) - 1
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = group_sorted
        return v[starts], t[starts], inverse

    def keyframe_keys(self) -> list[KeyframeKey]:
        """Distinct keyframes as sorted :class:`KeyframeKey`s (integral timestamps only)."""
        kv, kt, _ = self.keyframe_groups()
        if not np.all(kt == np.floor(kt)):
            raise ValueError("keyframe_keys needs whole-second timestamps; use keyframe_groups for fractional ones")
        return [KeyframeKey(str(self.videos[v]), int(t)) for v, t in zip(kv.tolist(), kt.tolist())]

    def in_keyframes(self, keys: Collection[KeyframeKey] | Iterable[KeyframeKey]) -> np.ndarray:
        """``[N]`` bool: the row's (video, whole-second timestamp) is one of ``keys`` (vectorised)."""
        keys = list(keys)
        if not keys or len(self) == 0:
            return np.zeros(len(self), dtype=bool)
        names = self.videos.astype(str)
        key_videos = np.asarray([k.video_id for k in keys], dtype=str)
        pos = np.searchsorted(names, key_videos)
        pos_clipped = np.minimum(pos, max(len(names) - 1, 0))
        known = (pos < len(names)) & (names[pos_clipped] == key_videos)
        key_codes = pos_clipped[known].astype(np.int64)
        key_seconds = np.asarray([k.timestamp for k in keys], dtype=np.int64)[known]
        wanted = (key_codes << 32) | key_seconds
        whole = self.timestamp == np.floor(self.timestamp)
        row_codes = (self.video_index.astype(np.int64) << 32) | np.where(whole, self.timestamp, -1).astype(np.int64)
        return np.isin(row_codes, wanted) & whole
