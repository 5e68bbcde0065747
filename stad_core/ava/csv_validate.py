"""Validation of parsed AVA CSV columns, shared by the fast and the diagnostic path (and, for
boxes and scores, by the proposal pickles).

Each check first tests a whole column with two reductions (``min``/``max`` propagate NaN) and
builds a per-row mask only when that fails, so a clean file costs a handful of passes. Of all the
problems found, the one on the earliest row is raised, with its line number.

Read leniently, the problems a reader can work around -- boxes outside ``[0, 1]``, inverted boxes,
scores outside ``[0, 1]``, unknown action ids, blank lines -- become one warning each (the first
row and a count) and the rows are clipped, kept or dropped; ``docs/data-formats.md`` has the table.
Coordinates that look like pixels stay an error: clipping cannot rescue them, dividing by the frame
size (``pixel_boxes``) does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stad_core.ava.csv_columns import MAX_LISTED_WARNINGS, TRUNCATED_HINT, ColumnSummary, CsvColumns, layout_hint
from stad_core.ava.keys import AvaFormatError
from stad_core.ava.table import AvaTable
from stad_core.boxes import BOX_TOLERANCE

PIXEL_HINT = (
    "divide x by the frame width and y by its height: `stad eval-ava --pixel-boxes WIDTH HEIGHT`, "
    "pixel_boxes=(WIDTH, HEIGHT) in Python"
)


@dataclass(frozen=True)
class Tolerated:
    """A problem a lenient read worked around: its first row, how many rows had it, what was done."""

    row: int
    count: int
    problem: str
    action: str


class Problems:
    """The problems of N rows found by vectorised checks.

    The problem on the smallest row index is the error to raise (:meth:`offer`). With ``lenient``,
    the problems offered through :meth:`tolerate` are recorded as :class:`Tolerated` instead.
    ``skip`` [N] bool marks rows left out of the checks that need a box (rows without a box, blank
    lines dropped by a lenient read); None: none.
    """

    def __init__(self, skip: np.ndarray | None = None, *, lenient: bool = False) -> None:
        self.skip = skip
        self.lenient = lenient
        self.row: int | None = None
        self.problem = ""
        self.hint: str | None = None
        self.tolerated: list[Tolerated] = []
        self.drop: np.ndarray | None = None  # [N] bool, rows a lenient read removes

    def valid(self, mask: np.ndarray) -> np.ndarray:
        """Restrict a per-row problem mask [N] to the rows that are checked."""
        return mask if self.skip is None else mask & ~self.skip

    def offer(self, mask: np.ndarray, describe: Callable[[int], str], hint: str | None = None) -> None:
        """Consider the first row of ``mask`` [N] bool; ``describe(row)`` words the problem."""
        if not mask.any():
            return
        row = int(np.argmax(mask))
        if self.row is None or row < self.row:
            self.row, self.problem, self.hint = row, describe(row), hint

    def tolerate(
        self, mask: np.ndarray, describe: Callable[[int], str], hint: str, action: str, *, drop: bool = False
    ) -> bool:
        """A problem a lenient read works around by ``action`` (what happens to the rows, e.g.
        ``"clipped to [0, 1]"``); otherwise an error like :meth:`offer`, its hint naming ``--lenient``.

        Returns True when the rows were tolerated: the caller then applies the fix. With ``drop``
        the rows leave the table and every later check.
        """
        if not mask.any():
            return False
        if not self.lenient:
            sep = " " if hint.endswith("?") else ". "
            self.offer(mask, describe, f"{hint}{sep}With --lenient (lenient=True) such rows are {action}, with a warning")
            return False
        row = int(np.argmax(mask))
        self.tolerated.append(Tolerated(row, int(np.count_nonzero(mask)), describe(row), action))
        if drop:
            self.drop = mask.copy() if self.drop is None else self.drop | mask
            self.skip = self.drop.copy() if self.skip is None else self.skip | mask
        return True


def tolerated_warning(where: str, tolerated: Tolerated) -> str:
    """One warning line for a tolerated problem: ``where`` is ``path:line`` of its first row."""
    rows = "1 such row" if tolerated.count == 1 else f"{tolerated.count} such rows"
    return f"{where}: {tolerated.problem}; {rows} {tolerated.action} (--lenient)"


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
    known_action_ids: Collection[int] | None = None,
    known_from: str = "the label map",
    lenient: bool = False,
    pixel_boxes: tuple[float, float] | None = None,
) -> AvaTable:
    """Check parsed columns and build the table; raise the problem of the first bad row.

    Trailing rows of empty fields (blank lines at the end) are dropped; rows that name a keyframe
    but no box go to ``table.boxless`` when ``allow_boxless_rows``; unusable person ids become -1
    with a warning unless ``strict_person_ids``. See :func:`stad_core.ava.read_ava_csv` for the
    options; ``unterminated`` (no newline at the end) points a problem on the last row at truncation.
    ``pixel_boxes`` divides the boxes in ``raw`` in place before they are checked.

    Raises:
        AvaFormatError: naming ``path``, the line of the first bad row and what is wrong there.
    """
    n_parsed = len(raw.line)
    raw, empty_video, all_null = _drop_trailing_blank_rows(raw)
    no_box = _rows_without_box(raw, empty_video)
    problems = Problems(no_box, lenient=lenient)
    if raw.nulls or empty_video is not None:
        _check_empty_fields(problems, raw, kind, empty_video, all_null, no_box, allow_boxless_rows)
    if pixel_boxes is not None:
        divide_pixel_boxes(raw.columns["boxes"], pixel_boxes, path)
    # Bounds the fast parser collected accept clean columns without another pass (boxes divided
    # by a frame size just now are checked afresh).
    summary = raw.summary
    if summary is not None and pixel_boxes is not None:
        summary = ColumnSummary(
            {k: v for k, v in summary.low.items() if k != "boxes"},
            {k: v for k, v in summary.high.items() if k != "boxes"},
            None,
            summary.action_ids,
        )
    action, score = _check_values(problems, raw, kind, validate_boxes, known_action_ids, known_from, summary)
    person, warnings = _person_ids(problems, raw, path, strict_person_ids)
    if problems.row is not None:
        line = int(raw.line[problems.row])
        hint = TRUNCATED_HINT if unterminated and line == int(raw.line[-1]) else problems.hint
        raise AvaFormatError(path, problems.problem, line=line, hint=hint)
    tolerated = [tolerated_warning(f"{path}:{int(raw.line[t.row])}", t) for t in sorted(problems.tolerated, key=lambda t: t.row)]

    ts, boxes, line, video_index = raw.columns["timestamp"], raw.columns["boxes"], raw.line, raw.video_index
    boxless = list(raw.boxless)
    if no_box is not None:
        boxless.extend(zip((str(v) for v in raw.videos[video_index[no_box]]), ts[no_box].tolist()))
    remove = no_box
    if problems.drop is not None:
        remove = problems.drop if remove is None else remove | problems.drop
    if remove is not None:
        keep = ~remove
        video_index, ts, boxes, action, person, line = (
            video_index[keep], ts[keep], boxes[keep], action[keep], person[keep], line[keep]
        )
        score = None if score is None else score[keep]
    if remove is not None or len(video_index) < n_parsed:
        # Every parsed video id names a row (both parsers build the vocabulary from the rows),
        # so only removed rows can leave one unused.
        videos, video_index = _drop_unused_videos(raw.videos, video_index)
    else:
        videos = raw.videos
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
        warnings=raw.warnings + tolerated + warnings,
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
    problems: Problems,
    raw: CsvColumns,
    kind: str,
    empty_video: np.ndarray | None,
    all_null: np.ndarray | None,
    no_box: np.ndarray | None,
    allow_boxless_rows: bool,
) -> None:
    """Blank rows (dropped by a lenient read), empty video ids, rows without a box (unless
    allowed), other empty fields."""
    none = np.zeros(len(raw.line), dtype=bool)
    all_null = none if all_null is None else all_null
    empty_video = none if empty_video is None else empty_video
    problems.tolerate(
        all_null, lambda r: "blank line (or a row of empty fields)", "remove it; AVA CSVs have one row per line",
        "dropped", drop=True,
    )
    problems.offer(empty_video & ~all_null, lambda r: "empty video_id", None)
    if not allow_boxless_rows and no_box is not None:
        problems.offer(
            no_box,
            lambda r: "row has a keyframe but no box",
            "pass allow_boxless_rows=True to read 'keyframe with no boxes' rows",
        )
    for name in raw.layout.names[1:]:
        mask = raw.nulls.get(name)
        if mask is not None:
            problems.offer(problems.valid(mask & ~all_null), lambda r, name=name: f"empty {name} field", layout_hint(kind))


def _check_values(
    problems: Problems,
    raw: CsvColumns,
    kind: str,
    validate_boxes: bool,
    known_action_ids: Collection[int] | None,
    known_from: str,
    summary: ColumnSummary | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Timestamps, boxes, action ids and scores; returns ``action_id`` [N] int32 and ``score`` [N] or None."""
    cols, n = raw.columns, len(raw.line)
    ts = cols["timestamp"]
    if not (summary is not None and summary.within("timestamp", 0.0, np.inf)) and not _all_within(ts, 0.0, np.inf):
        bad = problems.valid(~(np.isfinite(ts) & (ts >= 0)))
        problems.offer(bad, lambda r: f"timestamp {float(ts[r])} is not a non-negative number")
    check_boxes_and_scores(problems, cols["boxes"], cols.get("score"), validate=validate_boxes, summary=summary)
    if raw.layout.has("action_id"):
        action = cols["action_id"]
        int32_max = np.iinfo(np.int32).max
        if summary is not None and "action_id" in summary.low and n:
            low, high = int(summary.low["action_id"]), int(summary.high["action_id"])  # bounds of a superset
        else:
            low, high = (int(action.min()), int(action.max())) if n else (1, 1)
        if low < 1 or high > int32_max:
            problems.offer(
                problems.valid(action < 1), lambda r: f"action id {int(action[r])} is not a positive integer", "AVA action ids are 1-based"
            )
            problems.offer(problems.valid(action > int32_max), lambda r: f"action id {int(action[r])} is too large")
        action = action.astype(np.int32, copy=False)
        present = None if summary is None else summary.action_ids
        if known_action_ids is not None and n and not (
            present is not None and np.isin(present, np.fromiter(known_action_ids, dtype=np.int64)).all()
        ):
            _check_known_actions(problems, action, (low, high), known_action_ids, known_from)
    else:
        action = _constant(n, -1, np.int32)
    return action, cols.get("score")


def check_boxes_and_scores(
    problems: Problems,
    boxes: np.ndarray,
    score: np.ndarray | None,
    *,
    validate: bool = True,
    summary: ColumnSummary | None = None,
) -> None:
    """Boxes ``[N, 4]`` finite, inside ``[0, 1]`` +- ``BOX_TOLERANCE`` and not inverted (the last two
    only when ``validate``); scores ``[N]`` (None: none) finite and inside ``[0, 1]``. ``summary``:
    bounds collected by the parser, which spare the passes over columns they show clean.

    Read leniently, boxes outside ``[0, 1]`` are clipped in place; inverted boxes and scores outside
    ``[0, 1]`` are kept as given (frame-mAP drops detections without area and only ranks scores).
    Boxes that look like pixel coordinates are an error either way.
    """

    def show(r: int) -> str:
        return "(" + ", ".join(f"{v:g}" for v in boxes[r]) + ")"

    lo, hi = (-BOX_TOLERANCE, 1 + BOX_TOLERANCE) if validate else (-np.inf, np.inf)
    if not (summary is not None and summary.within("boxes", lo, hi)) and not _all_within(boxes, lo, hi):
        finite = np.isfinite(boxes).all(axis=1)
        problems.offer(problems.valid(~finite), lambda r: f"box {show(r)} has a non-finite coordinate")
        if validate:
            outside = problems.valid(finite & ((boxes < lo) | (boxes > hi)).any(axis=1))
            pixels = _pixel_verdict(boxes, problems.valid(finite))
            if pixels is not None:
                problems.offer(outside, lambda r: f"box {show(r)} is outside [0, 1]; {pixels}", PIXEL_HINT)
            elif problems.tolerate(
                outside,
                lambda r: f"box {show(r)} is outside [0, 1]",
                "AVA boxes are normalised by the frame size; were pixel coordinates written?",
                "clipped to [0, 1]",
            ):
                boxes[outside] = np.clip(boxes[outside], 0.0, 1.0)
    if validate and not (summary is not None and summary.inverted is False):
        # (Clipping above keeps boxes the parser saw upright, upright.)
        inverted = (boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])  # False for NaN
        problems.tolerate(
            problems.valid(inverted),
            lambda r: f"box {show(r)} has x1 > x2 or y1 > y2",
            "columns 3-6 must be x1,y1 (top-left) then x2,y2 (bottom-right)",
            "kept",
        )
    if score is not None and not (summary is not None and summary.within("score", 0.0, 1.0)) and not _all_within(score, 0.0, 1.0):
        finite = np.isfinite(score)
        problems.offer(problems.valid(~finite), lambda r: f"score {float(score[r])} is not a finite number")
        problems.tolerate(
            problems.valid(finite & ((score < 0) | (score > 1))),
            lambda r: f"score {float(score[r]):g} is outside [0, 1]",
            "scores are confidences in [0, 1]; were logits written?",
            "kept as given",
        )


def _pixel_verdict(boxes: np.ndarray, finite: np.ndarray) -> str | None:
    """Why ``boxes`` [N, 4] look like pixel coordinates, or None: some coordinate is above 1.5 and
    most finite rows (``finite`` [N] bool) have one above 1."""
    big = boxes > 1.5
    if not big.any():
        return None
    above = finite & (boxes > 1 + BOX_TOLERANCE).any(axis=1)
    count, total = int(np.count_nonzero(above)), int(np.count_nonzero(finite))
    if 2 * count <= total:
        return None
    return f"{count} of {total} boxes have coordinates above 1: they look like pixel coordinates"


def divide_pixel_boxes(boxes: np.ndarray, size: tuple[float, float], path: Path) -> None:
    """Pixel boxes [N, 4] -> normalised, in place: x by the frame width, y by its height."""
    width, height = size
    if not (width > 0 and height > 0):
        raise ValueError(f"pixel_boxes needs a positive frame width and height, got {width} x {height}")
    if len(boxes) and _all_within(boxes, -BOX_TOLERANCE, 1 + BOX_TOLERANCE):
        raise AvaFormatError(
            path, f"--pixel-boxes {width:g} {height:g} was given but every box is already inside [0, 1]",
            hint="the file is normalised: leave out --pixel-boxes (pixel_boxes=None)",
        )
    boxes /= np.asarray([width, height, width, height], dtype=boxes.dtype)


def _check_known_actions(
    problems: Problems, action: np.ndarray, bounds: tuple[int, int], known: Collection[int], known_from: str
) -> None:
    """Action ids [N] outside ``known`` (``bounds``: the column's min and max); a lenient read drops them."""
    ids = np.unique(np.fromiter(known, dtype=np.int64))
    low, high = bounds
    if 0 <= high - low < len(ids) + 1 and np.isin(np.arange(low, high + 1), ids).all():
        return  # every id between the column's min and max is known: no per-row pass
    if len(ids) and ids[0] >= 0 and high < 1 << 24 and low >= -1:
        # A lookup table instead of np.isin's sort: one gather over the (large) column.
        lut = np.zeros(max(int(high), int(ids[-1])) + 2, dtype=bool)  # last slot: -1
        lut[ids] = True
        lut[-1] = True  # -1 is caught by ``action >= 1`` below
        outside = ~lut[action]
    else:
        outside = ~np.isin(action, ids)
    unknown = problems.valid(outside & (action >= 1))
    problems.tolerate(
        unknown,
        lambda r: f"action id {int(action[r])} is not in {known_from}",
        f"known ids: {_id_ranges(ids)}; 0-based ids, or another label map?",
        "dropped",
        drop=True,
    )


def _id_ranges(ids: np.ndarray, most: int = 8) -> str:
    """``[1, 2, 3, 5, 9, 10]`` -> ``"1-3, 5, 9-10"`` (at most ``most`` runs, then ``...``)."""
    if len(ids) == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    runs = [(int(r[0]), int(r[-1])) for r in np.split(ids, breaks)]
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most]]
    return ", ".join(text) + (", ..." if len(runs) > most else "")


def _person_ids(problems: Problems, raw: CsvColumns, path: Path, strict: bool) -> tuple[np.ndarray, list[str]]:
    """Person ids [N] int64 and warnings: a non-integer or negative (< -1) id is an error when
    ``strict``, otherwise -1 with a warning (the first few listed, the rest counted)."""
    n = len(raw.line)
    if not raw.layout.has("person_id"):
        return _constant(n, -1, np.int64), []
    person = raw.columns["person_id"]
    clean = raw.summary is not None and raw.summary.within("person_id", -1, np.iinfo(np.int64).max)
    if raw.person_junk is None and (clean or _all_within(person, -1, np.iinfo(np.int64).max)):
        return person, []
    junk = raw.person_junk if raw.person_junk is not None else np.zeros(n, dtype=bool)
    negative = problems.valid(~junk & (person < -1))
    if strict:
        problems.offer(negative, lambda r: f"person id {int(person[r])} is negative")
    unusable = problems.valid(junk | negative)
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
    used = np.zeros(len(videos), dtype=bool)
    used[video_index] = True  # a scatter, not bincount: no int64 copy of an 11M-row column
    if used.all():
        return videos, video_index
    remap = (np.cumsum(used) - 1).astype(np.int32)
    return videos[used], remap[video_index]
