"""Row layouts of AVA CSVs, and ``CsvColumns``: the one column form both parsers produce.

Row layouts (no header, comma-separated, boxes normalised ``x1, y1, x2, y2``):

* ground truth, 8 columns: ``video_id, timestamp, x1, y1, x2, y2, action_id, person_id``
* ground truth, 7 columns: ``video_id, timestamp, x1, y1, x2, y2, action_id`` (no person id)
* detections, 8 columns:   ``video_id, timestamp, x1, y1, x2, y2, action_id, score``
* detections, 7 columns:   ``video_id, timestamp, x1, y1, x2, y2, score`` (person proposals)

The fast path (:mod:`stad_core.ava.csv_fast`) and the diagnostic path
(:mod:`stad_core.ava.csv_diagnose`) both fill a :class:`CsvColumns`; :mod:`stad_core.ava.csv_validate`
checks it and turns it into an :class:`~stad_core.ava.table.AvaTable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["groundtruth", "detections"]

BOX = ("x1", "y1", "x2", "y2")

#: Individual warnings listed per file before the rest are summarised in one line.
MAX_LISTED_WARNINGS = 20

TRUNCATED_HINT = "the file ends in the middle of this row -- was it truncated by an interrupted copy or download?"


@dataclass(frozen=True)
class Layout:
    """Which column holds what, for one (kind, column count) pair."""

    names: tuple[str, ...]

    @property
    def ncols(self) -> int:
        return len(self.names)

    def has(self, name: str) -> bool:
        return name in self.names


LAYOUTS: dict[tuple[str, int], Layout] = {
    ("groundtruth", 8): Layout(("video_id", "timestamp", *BOX, "action_id", "person_id")),
    ("groundtruth", 7): Layout(("video_id", "timestamp", *BOX, "action_id")),
    ("detections", 8): Layout(("video_id", "timestamp", *BOX, "action_id", "score")),
    ("detections", 7): Layout(("video_id", "timestamp", *BOX, "score")),
}

#: numpy dtype of each value column (``video_id`` becomes int32 codes, boxes one [N, 4] float64).
#: The diagnostic path reads action ids as int64 so that one too large for int32 can be reported.
DTYPES: dict[str, type] = {
    "timestamp": np.float64,
    "action_id": np.int32,
    "person_id": np.int64,
    "score": np.float64,
}


def line_dtype(last_line: int) -> type:
    """dtype of a line-number column whose largest number is ``last_line``: int32 while it fits
    (47 MB instead of 95 MB for 11.8M detection rows), else int64. Both parsers use it, so they
    build equal tables."""
    return np.int32 if last_line < np.iinfo(np.int32).max else np.int64


def layout_hint(kind: str) -> str:
    if kind == "groundtruth":
        return "ground truth rows are video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]"
    return "detection rows are video_id,timestamp,x1,y1,x2,y2,action_id,score (or 7 columns without action_id)"


@dataclass
class ColumnSummary:
    """What the fast parser saw of the value columns while each block was in cache, so that
    validation can accept a clean column without another pass over it.

    The bounds cover every parsed row (a superset of the rows validated, e.g. when trailing blank
    rows are cut): they may only accept a column, never reject one -- a column they do not
    accept is checked row by row as before.

    Attributes:
        low / high: column name -> min / max of its values (``"boxes"``: over all four
            coordinates); NaN when a value is NaN. Columns not summarised are absent.
        inverted: whether some box has ``x1 > x2`` or ``y1 > y2`` (None: not summarised).
        action_ids: ``[A]`` the distinct action ids, sorted (None: not summarised).
    """

    low: dict[str, float]
    high: dict[str, float]
    inverted: bool | None
    action_ids: np.ndarray | None

    def within(self, name: str, lo: float, hi: float) -> bool:
        """True if every value of ``name`` is known to be finite and in ``[lo, hi]``."""
        if name not in self.low:
            return False
        low, high = self.low[name], self.high[name]
        return bool(np.isfinite(low) and np.isfinite(high) and low >= lo and high <= hi)


@dataclass
class CsvColumns:
    """N parsed but unvalidated rows of one file.

    Attributes:
        layout: the file's columns.
        videos: ``[V]`` object array of video ids, sorted.
        video_index: ``[N]`` int32 codes into ``videos``.
        columns: ``"boxes"`` -> ``[N, 4]`` float64; ``timestamp``/``score`` -> ``[N]`` float64,
            ``action_id``/``person_id`` -> ``[N]`` ints (see ``DTYPES``); only those the layout has.
        nulls: ``[N]`` bool masks of empty fields, only for columns that have some.
        line: ``[N]`` 1-based line numbers, int32 (int64 past 2**31 - 1 lines: :func:`line_dtype`).
        boxless: ``(video_id, timestamp)`` of 2-column rows (keyframe, no box).
        warnings: tolerated problems, each starting with ``file:line:``.
        person_junk: ``[N]`` bool, a person id present but not an integer (kept as -1); None if none.
        person_junk_text: row -> the raw person-id field, for the first few junk rows.
        summary: bounds the fast parser collected (None: none); see :class:`ColumnSummary`.
    """

    layout: Layout
    videos: np.ndarray
    video_index: np.ndarray
    columns: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray]
    line: np.ndarray
    boxless: list[tuple[str, float]]
    warnings: list[str]
    person_junk: np.ndarray | None = None
    person_junk_text: dict[int, str] | None = None
    summary: ColumnSummary | None = None

    def head(self, n: int) -> CsvColumns:
        """The first ``n`` rows (views, no copies)."""
        return CsvColumns(
            self.layout,
            self.videos,
            self.video_index[:n],
            {k: v[:n] for k, v in self.columns.items()},
            {k: v[:n] for k, v in self.nulls.items()},
            self.line[:n],
            self.boxless,
            self.warnings,
            None if self.person_junk is None else self.person_junk[:n],
            self.person_junk_text,
            self.summary,  # bounds of a superset of the rows stay valid
        )
