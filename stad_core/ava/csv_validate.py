"""Validation of parsed AVA CSV columns, shared by the fast and the diagnostic path.

Each check first tests a whole column with two reductions (``min``/``max`` propagate NaN) and
builds a per-row mask only when that fails, so a clean file costs a handful of passes. Of all the
problems found, the one on the earliest row is raised, with its line number.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from stad_core.ava.csv_columns import MAX_LISTED_WARNINGS, TRUNCATED_HINT, CsvColumns, layout_hint
from stad_core.ava.keys import AvaFormatError
from stad_core.ava.table import AvaTable
from stad_core.boxes import BOX_TOLERANCE


class _FirstProblem:
    """Keeps the problem at the smallest row index among all vectorised checks.

    ``no_box`` [N] bool marks rows without a box (None: none); :meth:`valid` leaves them out of
    the checks that need a box.
    """

    def __init__(self, no_box: np.ndarray | None) -> None:
        self.no_box = no_box
        self.row: int | None = None
        self.problem = ""
        self.hint: str | None = None

    def valid(self, mask: np.ndarray) -> np.ndarray:
        """Restrict a per-row problem mask [N] to rows that have a box."""
        return mask if self.no_box is None else mask & ~self.no_box

    def offer(self, mask: np.ndarray, describe: Callable[[int], str], hint: str | None = None) -> None:
        """Consider the first row of ``mask`` [N] bool; ``describe(row)`` words the problem."""
        if not mask.any():
            return
        row = int(np.argmax(mask))
        if self.row is None or row < self.row:
            self.row, self.problem, self.hint = row, describe(row), hint


def _constant(n: int, value: int, dtype: type) -> np.ndarray:
    """A read-only ``[n]`` array of one value that costs no memory (a broadcast view): the
    person ids of detection files and the action ids of proposal files are all -1."""
    return np.broadcast_to(np.asarray(value, dtype=dtype), (n,))


def _all_within(values: np.ndarray, lo: float, hi: float) -> bool:
    """Every value finite and in ``[lo, hi]`` (two reductions; NaN makes min/max NaN)."""
    if values.size == 0:
        return True
    low, high = values.min(), values.max()
    return bool(np.isfinite(low) and np.isfinite(high) and low >= lo and high <= hi)


def validate(
    raw: CsvColumns,
    path: Path,
    kind: str,
    *,
    allow_boxless_rows: bool,
    validate_boxes: bool,
    strict_person_ids: bool,
    unterminated: bool,
) -> AvaTable:
    """Check parsed columns and build the table; raise the problem of the first bad row.

    Trailing rows of empty fields (blank lines at the end) are dropped; rows that name a keyframe
    but no box go to ``table.boxless`` when ``allow_boxless_rows``; unusable person ids become -1
    with a warning unless ``strict_person_ids``. See :func:`stad_core.ava.read_ava_csv` for the
    options; ``unterminated`` (no newline at the end) points a problem on the last row at truncation.

    Raises:
        AvaFormatError: naming ``path``, the line of the first bad row and what is wrong there.
    """
    raw, empty_video, all_null = _drop_trailing_blank_rows(raw)
    no_box = _rows_without_box(raw, empty_video)
    first = _FirstProblem(no_box)
    if raw.nulls or empty_video is not None:
        _check_empty_fields(first, raw, kind, empty_video, all_null, allow_boxless_rows)
    action, score = _check_values(first, raw, kind, validate_boxes)
    person, warnings = _person_ids(first, raw, path, strict_person_ids)
    if first.row is not None:
        line = int(raw.line[first.row])
        hint = TRUNCATED_HINT if unterminated and line == int(raw.line[-1]) else first.hint
        raise AvaFormatError(path, first.problem, line=line, hint=hint)

    ts, boxes, line, video_index = raw.columns["timestamp"], raw.columns["boxes"], raw.line, raw.video_index
    boxless = list(raw.boxless)
    if no_box is not None:
        boxless.extend(zip((str(v) for v in raw.videos[video_index[no_box]]), ts[no_box].tolist()))
        keep = ~no_box
        video_index, ts, boxes, action, person, line = (
            video_index[keep], ts[keep], boxes[keep], action[keep], person[keep], line[keep]
        )
        score = None if score is None else score[keep]
    videos, video_index = _drop_unused_videos(raw.videos, video_index)
    return AvaTable(
        videos=videos,
        video_index=video_index,
        timestamp=ts,
        boxes=boxes,
        action_id=action,
        person_id=person,
        score=score,
        line=line,
        source=str(path),
        boxless=boxless,
        warnings=raw.warnings + warnings,
    )


def _drop_trailing_blank_rows(raw: CsvColumns) -> tuple[CsvColumns, np.ndarray | None, np.ndarray | None]:
    """Drop rows of empty fields at the end (trailing blank lines are tolerated).

    Returns the rows kept, ``empty_video`` [N] bool (None when no video id is blank) and
    ``all_null`` [N] bool, rows with every field empty (None when there are none).
    """
    blank_codes = [i for i, v in enumerate(raw.videos) if not str(v).strip()]
    if not (raw.nulls or blank_codes):
        return raw, None, None
    n = len(raw.line)
    none = np.zeros(n, dtype=bool)
    empty_video = np.isin(raw.video_index, blank_codes)
    all_null = empty_video.copy()
    for name in raw.layout.names[1:]:
        all_null &= raw.nulls.get(name, none)
    keep_n = n
    while keep_n > 0 and all_null[keep_n - 1]:
        keep_n -= 1
    if keep_n < n:
        raw, empty_video, all_null = raw.head(keep_n), empty_video[:keep_n], all_null[:keep_n]
    return raw, (empty_video if blank_codes else None), all_null


def _rows_without_box(raw: CsvColumns, empty_video: np.ndarray | None) -> np.ndarray | None:
    """[N] bool: rows that name a keyframe (video id and time) but leave every later field empty;
    None when there are none."""
    if not raw.nulls:
        return None
    none = np.zeros(len(raw.line), dtype=bool)
    no_box = ~raw.nulls.get("timestamp", none)
    if empty_video is not None:
        no_box &= ~empty_video
    for name in raw.layout.names[2:]:
        no_box &= raw.nulls.get(name, none)
    return no_box if no_box.any() else None


def _check_empty_fields(
    first: _FirstProblem,
    raw: CsvColumns,
    kind: str,
    empty_video: np.ndarray | None,
    all_null: np.ndarray | None,
    allow_boxless_rows: bool,
) -> None:
    """Blank rows, empty video ids, rows without a box (unless allowed), other empty fields."""
    none = np.zeros(len(raw.line), dtype=bool)
    all_null = none if all_null is None else all_null
    empty_video = none if empty_video is None else empty_video
    first.offer(all_null, lambda r: "blank line (or a row of empty fields)", "remove it; AVA CSVs have one row per line")
    first.offer(empty_video & ~all_null, lambda r: "empty video_id", None)
    if not allow_boxless_rows and first.no_box is not None:
        first.offer(
            first.no_box,
            lambda r: "row has a keyframe but no box",
            "pass allow_boxless_rows=True to read 'keyframe with no boxes' rows",
        )
    for name in raw.layout.names[1:]:
        mask = raw.nulls.get(name)
        if mask is not None:
            first.offer(first.valid(mask & ~all_null), lambda r, name=name: f"empty {name} field", layout_hint(kind))


def _check_values(
    first: _FirstProblem, raw: CsvColumns, kind: str, validate_boxes: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Timestamps, boxes, action ids and scores; returns ``action_id`` [N] int32 and ``score`` [N] or None."""
    cols, n = raw.columns, len(raw.line)
    ts = cols["timestamp"]
    if not _all_within(ts, 0.0, np.inf):
        bad = first.valid(~(np.isfinite(ts) & (ts >= 0)))
        first.offer(bad, lambda r: f"timestamp {float(ts[r])} is not a non-negative number")
    boxes = cols["boxes"]

    def show(r: int) -> str:
        return "(" + ", ".join(f"{v:g}" for v in boxes[r]) + ")"

    lo, hi = (-BOX_TOLERANCE, 1 + BOX_TOLERANCE) if validate_boxes else (-np.inf, np.inf)
    if not _all_within(boxes, lo, hi):
        finite = np.isfinite(boxes).all(axis=1)
        first.offer(first.valid(~finite), lambda r: f"box {show(r)} has a non-finite coordinate")
        if validate_boxes:
            outside = ((boxes < lo) | (boxes > hi)).any(axis=1)
            first.offer(
                first.valid(finite & outside),
                lambda r: f"box {show(r)} is outside [0, 1]",
                "AVA boxes are normalised by the frame size; were pixel coordinates written?",
            )
    if validate_boxes and kind == "groundtruth":
        inverted = (boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])  # False for NaN
        first.offer(
            first.valid(inverted),
            lambda r: f"box {show(r)} has x1 > x2 or y1 > y2",
            "columns 3-6 must be x1,y1 (top-left) then x2,y2 (bottom-right); pass validate_boxes=False to keep it",
        )
    if raw.layout.has("action_id"):
        action = cols["action_id"]
        int32_max = np.iinfo(np.int32).max
        if not _all_within(action, 1, int32_max):
            first.offer(
                first.valid(action < 1), lambda r: f"action id {int(action[r])} is not a positive integer", "AVA action ids are 1-based"
            )
            first.offer(first.valid(action > int32_max), lambda r: f"action id {int(action[r])} is too large")
        action = action.astype(np.int32, copy=False)
    else:
        action = _constant(n, -1, np.int32)
    score = cols.get("score")
    if score is not None and not _all_within(score, -np.inf, np.inf):
        first.offer(first.valid(~np.isfinite(score)), lambda r: f"score {float(score[r])} is not a finite number")
    return action, score


def _person_ids(first: _FirstProblem, raw: CsvColumns, path: Path, strict: bool) -> tuple[np.ndarray, list[str]]:
    """Person ids [N] int64 and warnings: a non-integer or negative (< -1) id is an error when
    ``strict``, otherwise -1 with a warning (the first few listed, the rest counted)."""
    n = len(raw.line)
    if not raw.layout.has("person_id"):
        return _constant(n, -1, np.int64), []
    person = raw.columns["person_id"]
    if raw.person_junk is None and _all_within(person, -1, np.iinfo(np.int64).max):
        return person, []
    junk = raw.person_junk if raw.person_junk is not None else np.zeros(n, dtype=bool)
    negative = first.valid(~junk & (person < -1))
    if strict:
        first.offer(negative, lambda r: f"person id {int(person[r])} is negative")
    unusable = first.valid(junk | negative)
    if strict or not unusable.any():
        return person, []
    warnings: list[str] = []
    rows = np.flatnonzero(unusable)
    for r in rows[:MAX_LISTED_WARNINGS]:
        what = "is not an integer" if junk[r] else f"{int(person[r])} is negative"
        shown = (raw.person_junk_text or {}).get(int(r)) if junk[r] else None
        label = f"person id {shown!r} {what}" if shown is not None else f"person id {what}"
        warnings.append(f"{path}:{int(raw.line[r])}: {label}; kept the row with person id unknown (-1)")
    if len(rows) > MAX_LISTED_WARNINGS:
        warnings.append(f"{path}: {len(rows) - MAX_LISTED_WARNINGS} more rows with unusable person ids kept as -1")
    return np.where(unusable, -1, person), warnings


def _drop_unused_videos(videos: np.ndarray, video_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove names no row uses (blank trailing lines, boxless-only videos); keeps sorted order."""
    used = np.bincount(video_index, minlength=len(videos)) > 0
    if used.all():
        return videos, video_index
    remap = (np.cumsum(used) - 1).astype(np.int32)
    return videos[used], remap[video_index]
