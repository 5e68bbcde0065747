"""Readers and writers for AVA CSVs: ground truth, detections/results and excluded timestamps.

Row layouts (no header, comma-separated, boxes normalised ``x1, y1, x2, y2``):

* ground truth, 8 columns: ``video_id, timestamp, x1, y1, x2, y2, action_id, person_id``
* ground truth, 7 columns: ``video_id, timestamp, x1, y1, x2, y2, action_id`` (no person id)
* detections, 8 columns:   ``video_id, timestamp, x1, y1, x2, y2, action_id, score``
* detections, 7 columns:   ``video_id, timestamp, x1, y1, x2, y2, score`` (person proposals)
* exclusions, 2 columns:   ``video_id, timestamp``

Fast path: pyarrow's streaming, multi-threaded CSV reader with explicit column types, the video
column dictionary-encoded (its codes become ``video_index`` directly, never N Python strings),
batches copied straight into numpy columns, then vectorised validation. pyarrow
does not report line numbers, so when it rejects a file a line-by-line Python scan finds the first
bad line and says what is wrong there. ``docs/data-formats.md`` lists every tolerance decision.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from stad_core.ava.keys import AvaFormatError, KeyframeKey, check_readable, parse_integer_second
from stad_core.ava.table import AvaTable
from stad_core.boxes import BOX_TOLERANCE

Kind = Literal["groundtruth", "detections"]

#: pyarrow reads the file in blocks (batches) of this many bytes, parsed in parallel; 4 MiB means
#: fewer batches to translate than the 1 MiB default at the same speed. Tests shrink it.
_BLOCK_SIZE = 1 << 22

#: Individual warnings listed per file before the rest are summarised in one line.
MAX_LISTED_WARNINGS = 20

_BOX = ("x1", "y1", "x2", "y2")
_TRUNCATED_HINT = "the file ends in the middle of this row -- was it truncated by an interrupted copy or download?"


@dataclass(frozen=True)
class _Layout:
    """Which column holds what, for one (kind, column count) pair."""

    names: tuple[str, ...]

    @property
    def ncols(self) -> int:
        return len(self.names)

    def has(self, name: str) -> bool:
        return name in self.names


_LAYOUTS: dict[tuple[str, int], _Layout] = {
    ("groundtruth", 8): _Layout(("video_id", "timestamp", *_BOX, "action_id", "person_id")),
    ("groundtruth", 7): _Layout(("video_id", "timestamp", *_BOX, "action_id")),
    ("detections", 8): _Layout(("video_id", "timestamp", *_BOX, "action_id", "score")),
    ("detections", 7): _Layout(("video_id", "timestamp", *_BOX, "score")),
}

_ARROW_TYPES: dict[str, pa.DataType] = {
    "video_id": pa.dictionary(pa.int32(), pa.string()),
    "timestamp": pa.float64(),
    **{name: pa.float64() for name in _BOX},
    "action_id": pa.int32(),  # larger values fail here and are reported by the line parser
    "person_id": pa.int64(),
    "score": pa.float64(),
}


def _layout_hint(kind: str) -> str:
    if kind == "groundtruth":
        return "ground truth rows are video_id,timestamp,x1,y1,x2,y2,action_id[,person_id]"
    return "detection rows are video_id,timestamp,x1,y1,x2,y2,action_id,score (or 7 columns without action_id)"


# ---------------------------------------------------------------------------------------------
# Raw columns: what both parsers produce before validation.


@dataclass
class _Raw:
    """Parsed but unvalidated columns; ``nulls[name]`` marks empty fields (absent = none)."""

    layout: _Layout
    videos: np.ndarray  # [V] object, sorted
    video_index: np.ndarray  # [N] int32
    columns: dict[str, np.ndarray]  # "boxes" -> [N, 4]; timestamp/action_id/person_id/score -> [N]
    nulls: dict[str, np.ndarray]  # name -> [N] bool, only for columns that have empty fields
    line: np.ndarray  # [N] int64
    boxless: list[tuple[str, float]]
    warnings: list[str]
    person_junk: np.ndarray | None = None  # [N] bool: person id present but not an integer
    person_junk_text: dict[int, str] | None = None  # row -> the raw field, for the first few


def _sorted_vocabulary(names: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort a dictionary's values and remap codes so equal inputs give equal tables."""
    names = names.astype(str)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return names[order].astype(object), rank[codes] if len(codes) else codes.astype(np.int32)


class _Columns:
    """Growable numpy output columns, filled batch by batch.

    Capacity is estimated from the first batch (bytes per row) so the arrays are allocated once;
    ``np.empty`` pages that are never written cost no memory, and a wrong estimate only means a
    resize."""

    def __init__(self, names: tuple[str, ...], capacity: int) -> None:
        self.names = names
        self.n = 0
        self.video_index = np.empty(capacity, dtype=np.int32)
        self.boxes = np.empty((capacity, 4), dtype=np.float64)
        dtypes = {"action_id": np.int32, "person_id": np.int64}
        self.values = {
            name: np.empty(capacity, dtype=dtypes.get(name, np.float64))
            for name in names[1:]
            if name not in _BOX
        }
        self.nulls: dict[str, np.ndarray] = {}

    @property
    def capacity(self) -> int:
        return len(self.video_index)

    def reserve(self, rows: int) -> None:
        if self.n + rows <= self.capacity:
            return
        new = max(self.n + rows, int(self.capacity * 1.5) + 1024)

        def grow(a: np.ndarray) -> np.ndarray:
            out = np.empty((new, *a.shape[1:]), dtype=a.dtype)
            out[: self.n] = a[: self.n]
            return out

        self.video_index, self.boxes = grow(self.video_index), grow(self.boxes)
        self.values = {k: grow(v) for k, v in self.values.items()}
        self.nulls = {k: np.concatenate([v[: self.n], np.zeros(new - self.n, bool)]) for k, v in self.nulls.items()}

    def null_mask(self, name: str) -> np.ndarray:
        if name not in self.nulls:
            self.nulls[name] = np.zeros(self.capacity, dtype=bool)
        return self.nulls[name]


def _person_ids_from_text(col: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised person-id column read as text: ``(ids [n] int64 (-1 for junk), junk [n] bool,
    empty [n] bool)``. A fractional id (``0.998``: a detections file read as ground truth) raises
    ArrowInvalid so that the line-by-line parser reports it with its line number."""
    text = pc.utf8_trim_whitespace(col)
    empty = pc.equal(text, "")
    integral = pc.match_substring_regex(text, r"^-?[0-9]{1,18}$")
    if pc.any(pc.match_substring(text, ".")).as_py():
        raise pa.ArrowInvalid("fractional person id")
    ids = pc.cast(pc.if_else(integral, text, "-1"), pa.int64()).to_numpy(zero_copy_only=False)
    junk = pc.invert(pc.or_(integral, empty)).to_numpy(zero_copy_only=False)
    return ids, junk, empty.to_numpy(zero_copy_only=False)


def _read_arrow(path: Path, layout: _Layout, *, person_as_text: bool = False) -> _Raw:
    """Fast path: pyarrow's streaming CSV reader, batch by batch into numpy columns.

    Streaming keeps only one batch of arrow memory alive (peak RSS ~ the numpy result, not twice
    it) at the same speed as reading the whole table. ``person_as_text`` reads the person-id column
    as strings and tolerates non-integers (``3_``) vectorised. Raises pyarrow.ArrowInvalid on
    anything it cannot parse.
    """
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(layout.names), use_threads=True, block_size=_BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={
                name: pa.string() if (person_as_text and name == "person_id") else _ARROW_TYPES[name]
                for name in layout.names
            },
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    size = path.stat().st_size
    junk_rows: list[np.ndarray] = []
    junk_text: dict[int, str] = {}
    out: _Columns | None = None
    vocabulary: dict[str, int] = {}  # video id -> code in order of first appearance
    for batch in reader:
        rows = batch.num_rows
        if out is None:
            # Rows in the whole file ~ size / (bytes per row of the first block), plus a margin.
            per_row = max(min(size, _BLOCK_SIZE) / max(rows, 1), 1.0)
            out = _Columns(layout.names, int(size / per_row * 1.1) + rows + 16)
        out.reserve(rows)
        lo, hi = out.n, out.n + rows
        video = batch.column(0)
        # Each batch has its own small dictionary: translate it to global codes.
        lut = np.array([vocabulary.setdefault(v, len(vocabulary)) for v in video.dictionary.to_pylist()], dtype=np.int32)
        out.video_index[lo:hi] = lut[video.indices.to_numpy(zero_copy_only=False)] if len(lut) else 0
        for j, name in enumerate(layout.names[1:], start=1):
            col = batch.column(j)
            if person_as_text and name == "person_id":
                ids, junk, empty = _person_ids_from_text(col)
                out.values[name][lo:hi] = ids
                if empty.any():
                    out.null_mask(name)[lo:hi] = empty
                if junk.any():
                    found = np.flatnonzero(junk)
                    junk_rows.append(found + lo)
                    for r in found[: max(MAX_LISTED_WARNINGS - len(junk_text), 0)]:
                        junk_text[int(r) + lo] = col[int(r)].as_py().strip()
                continue
            if col.null_count:
                out.null_mask(name)[lo:hi] = col.is_null().to_numpy(zero_copy_only=False)
                col = col.fill_null(0)
            target = out.boxes[lo:hi, _BOX.index(name)] if name in _BOX else out.values[name][lo:hi]
            target[...] = col.to_numpy(zero_copy_only=False)
        out.n = hi
    if out is None:
        out = _Columns(layout.names, 0)
    n = out.n
    names = np.array(list(vocabulary), dtype=object)
    videos, video_index = _sorted_vocabulary(names, out.video_index[:n])
    columns = {name: values[:n] for name, values in out.values.items()}
    columns["boxes"] = out.boxes[:n]
    nulls = {name: mask[:n] for name, mask in out.nulls.items()}
    person_junk = None
    if junk_rows:
        person_junk = np.zeros(n, dtype=bool)
        person_junk[np.concatenate(junk_rows)] = True
    return _Raw(
        layout, videos, video_index, columns, nulls, np.arange(1, n + 1, dtype=np.int64), [], [], person_junk, junk_text
    )


_INTEGER = re.compile(r"-?[0-9]{1,18}")  # fits int64


def _looks_like_score(text: str) -> bool:
    """A person id such as ``0.998`` means a detections file was read as ground truth."""
    try:
        return "." in text and math.isfinite(float(text))
    except ValueError:
        return False


def _is_number_text(text: str) -> bool:
    return "_" not in text  # Python accepts 1_000; AVA files and pyarrow do not


class _PythonParser:
    """Line-by-line parser: finds the exact line of syntax problems, and parses what pyarrow can't
    (boxless 2-column rows, non-integer person ids when tolerated)."""

    def __init__(self, path: Path, kind: str, layout: _Layout, *, allow_boxless_rows: bool, strict_person_ids: bool):
        self.path, self.kind, self.layout = path, kind, layout
        self.allow_boxless_rows = allow_boxless_rows
        self.strict_person_ids = strict_person_ids

    def parse(self) -> tuple[_Raw, AvaFormatError | None]:
        """Parse until the first syntax error; return the rows before it and that error (or None)."""
        layout = self.layout
        value_names = layout.names[1:]
        video_ids: list[str] = []
        values: dict[str, list[float | int]] = {name: [] for name in value_names}
        null_rows: dict[str, list[int]] = {name: [] for name in value_names}
        junk_rows: list[int] = []
        junk_text: dict[int, str] = {}
        lines: list[int] = []
        boxless: list[tuple[str, float]] = []
        error: AvaFormatError | None = None
        text_lines = self._lines()
        last = len(text_lines)
        while last > 0 and not text_lines[last - 1].strip():
            last -= 1  # trailing blank lines are tolerated
        unterminated = self._unterminated()
        for lineno, text in enumerate(text_lines[:last], start=1):
            hint_if_last = _TRUNCATED_HINT if (lineno == last and unterminated) else None
            if not text.strip():
                error = AvaFormatError(self.path, "blank line", line=lineno, hint="remove it; AVA CSVs have one row per line")
                break
            fields = text.split(",")
            if len(fields) == 2 and self.allow_boxless_rows:
                try:
                    stamp = float(fields[1]) if _is_number_text(fields[1]) else math.nan
                except ValueError:
                    stamp = math.nan
                if not fields[0].strip() or not math.isfinite(stamp):
                    error = AvaFormatError(self.path, f"row {text!r} is not 'video_id,timestamp'", line=lineno)
                    break
                boxless.append((fields[0].strip(), stamp))
                continue
            if len(fields) != layout.ncols:
                error = AvaFormatError(
                    self.path,
                    f"expected {layout.ncols} columns, got {len(fields)}",
                    line=lineno,
                    hint=hint_if_last or _layout_hint(self.kind),
                )
                break
            row_index = len(lines)
            problem = None
            for name, raw in zip(value_names, fields[1:]):
                raw = raw.strip()
                if raw == "":
                    null_rows[name].append(row_index)
                    values[name].append(0)
                    continue
                integer = name in ("action_id", "person_id")
                try:
                    if not _is_number_text(raw) or (integer and not _INTEGER.fullmatch(raw)):
                        raise ValueError  # stricter than int(): pyarrow rejects "+3" and "1_0"
                    value: float | int = int(raw) if integer else float(raw)
                except ValueError:
                    if name == "person_id" and _looks_like_score(raw):
                        problem = (f"person_id {raw!r} is a fractional number", "score")
                        break
                    if name == "person_id" and not self.strict_person_ids:
                        junk_rows.append(row_index)
                        if len(junk_text) < MAX_LISTED_WARNINGS:
                            junk_text[row_index] = raw
                        values[name].append(-1)
                        continue
                    kind_word = "an integer" if integer else "a number"
                    if integer and re.fullmatch(r"-?[0-9]+", raw):
                        kind_word = "an integer that fits in 64 bits"
                    problem = (f"{name} {raw!r} is not {kind_word}", name)
                    break
                values[name].append(value)
            if problem is not None:
                text_problem, name = problem
                hint = hint_if_last
                if hint is None and lineno == 1 and name == "timestamp":
                    hint = "AVA CSVs have no header row; remove it"
                elif hint is None and name == "score":
                    hint = "the 8th column looks like detection scores; read this file with kind='detections'"
                elif hint is None and name == "person_id":
                    hint = "pass strict_person_ids=False to keep such rows with an unknown person id"
                error = AvaFormatError(self.path, text_problem, line=lineno, hint=hint)
                break
            video_ids.append(fields[0].strip() if fields[0].strip() else "")
            lines.append(lineno)
        n = len(lines)
        names, codes = np.unique(np.asarray(video_ids, dtype=str), return_inverse=True) if n else (np.zeros(0, str), np.zeros(0, int))
        columns: dict[str, np.ndarray] = {}
        nulls: dict[str, np.ndarray] = {}
        for name in value_names:
            dtype = np.int64 if name in ("action_id", "person_id") else np.float64
            # A row cut short by a syntax error may have left values behind: keep the first n.
            columns[name] = np.asarray(values[name][:n], dtype=dtype).reshape(n)
            rows = [r for r in null_rows[name] if r < n]
            if rows:
                mask = np.zeros(n, dtype=bool)
                mask[rows] = True
                nulls[name] = mask
        columns["boxes"] = np.column_stack([columns.pop(name) for name in _BOX]).reshape(n, 4)
        junk = None
        junk_rows = [r for r in junk_rows if r < n]
        if junk_rows:
            junk = np.zeros(n, dtype=bool)
            junk[junk_rows] = True
        raw = _Raw(
            layout,
            names.astype(object),
            codes.astype(np.int32),
            columns,
            nulls,
            np.asarray(lines, dtype=np.int64),
            boxless,
            [],
            junk,
            junk_text,
        )
        return raw, error

    def _lines(self) -> list[str]:
        data = self.path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            lineno = data.count(b"\n", 0, exc.start) + 1
            raise AvaFormatError(self.path, "not UTF-8 text", line=lineno, hint="AVA CSVs are plain ASCII/UTF-8") from None
        # Split on "\n" only (str.splitlines also splits on \v, \f, U+2028 ...), so line numbers
        # agree with every other tool.
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [t[:-1] if t.endswith("\r") else t for t in lines]

    def _unterminated(self) -> bool:
        return _last_byte(self.path) not in (b"\n", b"\r", b"")


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return b""
        fh.seek(-1, 2)
        return fh.read(1)


# ---------------------------------------------------------------------------------------------
# Validation shared by both parsers.


class _FirstProblem:
    """Keeps the problem at the smallest row index among all vectorised checks."""

    def __init__(self) -> None:
        self.row: int | None = None
        self.problem = ""
        self.hint: str | None = None

    def offer(self, mask: np.ndarray, describe, hint: str | None = None) -> None:  # noqa: ANN001
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


def _validate(
    raw: _Raw,
    path: Path,
    kind: str,
    *,
    allow_boxless_rows: bool,
    validate_boxes: bool,
    strict_person_ids: bool,
    unterminated: bool,
) -> AvaTable:
    layout, cols = raw.layout, raw.columns
    n = len(raw.line)
    none = np.zeros(n, dtype=bool)  # shared, never written: "no row" mask
    blank_codes = [i for i, v in enumerate(raw.videos) if not str(v).strip()]
    empty_video = np.isin(raw.video_index, blank_codes) if blank_codes else none
    all_null = none
    if raw.nulls or blank_codes:
        all_null = empty_video.copy()
        for name in layout.names[1:]:
            all_null &= raw.nulls.get(name, none)

    # Trailing blank lines (a blank row at the very end from pyarrow) are tolerated.
    keep_n = n
    while keep_n > 0 and all_null[keep_n - 1]:
        keep_n -= 1
    if keep_n < n:
        raw = _Raw(
            layout,
            raw.videos,
            raw.video_index[:keep_n],
            {k: v[:keep_n] for k, v in cols.items()},
            {k: v[:keep_n] for k, v in raw.nulls.items()},
            raw.line[:keep_n],
            raw.boxless,
            raw.warnings,
            None if raw.person_junk is None else raw.person_junk[:keep_n],
            raw.person_junk_text,
        )
        cols, n = raw.columns, keep_n
        none, empty_video, all_null = none[:keep_n], empty_video[:keep_n], all_null[:keep_n]
    last_line = int(raw.line[-1]) if n else 0

    # Rows that name a keyframe but no box (fields 3.. all empty).
    no_box = none
    if raw.nulls:
        no_box = ~empty_video & ~raw.nulls.get("timestamp", none)
        for name in layout.names[2:]:
            no_box &= raw.nulls.get(name, none)
    has_no_box = bool(no_box.any())

    def valid(mask: np.ndarray) -> np.ndarray:
        """Restrict a per-row problem mask to rows that have a box."""
        return mask & ~no_box if has_no_box else mask

    first = _FirstProblem()
    if raw.nulls or blank_codes:
        first.offer(all_null, lambda r: "blank line (or a row of empty fields)", "remove it; AVA CSVs have one row per line")
        first.offer(empty_video & ~all_null, lambda r: "empty video_id", None)
        if not allow_boxless_rows:
            first.offer(
                no_box,
                lambda r: "row has a keyframe but no box",
                "pass allow_boxless_rows=True to read 'keyframe with no boxes' rows",
            )
        for name in layout.names[1:]:
            mask = raw.nulls.get(name)
            if mask is not None:
                first.offer(valid(mask & ~all_null), lambda r, name=name: f"empty {name} field", _layout_hint(kind))

    # Each check first tests the whole column with two reductions (min/max propagate NaN) and
    # only builds a per-row mask when that fails: the happy path stays a handful of passes.
    ts = cols["timestamp"]
    if not _all_within(ts, 0.0, np.inf):
        first.offer(valid(~(np.isfinite(ts) & (ts >= 0))), lambda r: f"timestamp {float(ts[r])} is not a non-negative number")
    boxes = cols.pop("boxes")

    def show(r: int) -> str:
        return "(" + ", ".join(f"{v:g}" for v in boxes[r]) + ")"

    lo, hi = (-BOX_TOLERANCE, 1 + BOX_TOLERANCE) if validate_boxes else (-np.inf, np.inf)
    if not _all_within(boxes, lo, hi):
        finite = np.isfinite(boxes).all(axis=1)
        first.offer(valid(~finite), lambda r: f"box {show(r)} has a non-finite coordinate")
        if validate_boxes:
            outside = ((boxes < lo) | (boxes > hi)).any(axis=1)
            first.offer(
                valid(finite & outside),
                lambda r: f"box {show(r)} is outside [0, 1]",
                "AVA boxes are normalised by the frame size; were pixel coordinates written?",
            )
    if validate_boxes and kind == "groundtruth":
        inverted = (boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])  # False for NaN
        first.offer(
            valid(inverted),
            lambda r: f"box {show(r)} has x1 > x2 or y1 > y2",
            "columns 3-6 must be x1,y1 (top-left) then x2,y2 (bottom-right); pass validate_boxes=False to keep it",
        )
    if layout.has("action_id"):
        action = cols["action_id"]
        int32_max = np.iinfo(np.int32).max
        if not _all_within(action, 1, int32_max):
            first.offer(valid(action < 1), lambda r: f"action id {int(action[r])} is not a positive integer", "AVA action ids are 1-based")
            first.offer(valid(action > int32_max), lambda r: f"action id {int(action[r])} is too large")
        action = action.astype(np.int32, copy=False)
    else:
        action = _constant(n, -1, np.int32)
    if layout.has("score"):
        score = cols["score"]
        if not _all_within(score, -np.inf, np.inf):
            first.offer(valid(~np.isfinite(score)), lambda r: f"score {float(score[r])} is not a finite number")
    else:
        score = None

    warnings: list[str] = []
    if layout.has("person_id"):
        person = cols["person_id"]
        junk = raw.person_junk if raw.person_junk is not None else none
        if raw.person_junk is not None or not _all_within(person, -1, np.iinfo(np.int64).max):
            negative = valid(~junk & (person < -1))
            if strict_person_ids:
                first.offer(negative, lambda r: f"person id {int(person[r])} is negative")
            unusable = valid(junk | negative)
            if unusable.any() and not strict_person_ids:
                rows = np.flatnonzero(unusable)
                for r in rows[:MAX_LISTED_WARNINGS]:
                    what = "is not an integer" if junk[r] else f"{int(person[r])} is negative"
                    shown = (raw.person_junk_text or {}).get(int(r)) if junk[r] else None
                    label = f"person id {shown!r} {what}" if shown is not None else f"person id {what}"
                    warnings.append(f"{path}:{int(raw.line[r])}: {label}; kept the row with person id unknown (-1)")
                if len(rows) > MAX_LISTED_WARNINGS:
                    warnings.append(f"{path}: {len(rows) - MAX_LISTED_WARNINGS} more rows with unusable person ids kept as -1")
                person = np.where(unusable, -1, person)
    else:
        person = _constant(n, -1, np.int64)

    if first.row is not None:
        line = int(raw.line[first.row])
        hint = first.hint
        if line == last_line and unterminated:
            hint = _TRUNCATED_HINT
        raise AvaFormatError(path, first.problem, line=line, hint=hint)

    boxless = list(raw.boxless)
    if has_no_box:
        vids = raw.videos[raw.video_index[no_box]]
        boxless.extend(zip((str(v) for v in vids), ts[no_box].tolist()))
        keep = ~no_box
        raw_video_index, ts, boxes, action, person, line_arr = (
            raw.video_index[keep], ts[keep], boxes[keep], action[keep], person[keep], raw.line[keep]
        )
        score = None if score is None else score[keep]
    else:
        raw_video_index, line_arr = raw.video_index, raw.line
    videos, raw_video_index = _drop_unused_videos(raw.videos, raw_video_index)
    return AvaTable(
        videos=videos,
        video_index=raw_video_index,
        timestamp=ts,
        boxes=boxes,
        action_id=action,
        person_id=person,
        score=score,
        line=line_arr,
        source=str(path),
        boxless=boxless,
        warnings=raw.warnings + warnings,
    )


def _drop_unused_videos(videos: np.ndarray, video_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove names no row uses (blank trailing lines, boxless-only videos); keeps sorted order."""
    used = np.bincount(video_index, minlength=len(videos)) > 0
    if used.all():
        return videos, video_index
    remap = (np.cumsum(used) - 1).astype(np.int32)
    return videos[used], remap[video_index]


# ---------------------------------------------------------------------------------------------
# Public API.


def _first_line(path: Path) -> tuple[int, str] | None:
    """(line number, text) of the first non-blank line, or None for an empty/blank file."""
    with path.open("rb") as fh:
        for lineno, raw_line in enumerate(fh, start=1):
            text = raw_line.decode("utf-8-sig" if lineno == 1 else "utf-8", "replace").strip()
            if text:
                return lineno, text
    return None


def _choose_layout(path: Path, kind: str, allow_boxless_rows: bool) -> _Layout:
    if kind not in ("groundtruth", "detections"):
        raise ValueError(f"kind must be 'groundtruth' or 'detections', got {kind!r}")
    first = _first_line(path)
    if first is None:
        raise AvaFormatError(path, "file is empty", hint="an AVA CSV needs at least one row")
    lineno, text = first
    ncols = text.count(",") + 1
    if ncols == 2 and allow_boxless_rows:
        # Look further for the first row with a box; an all-boxless file is read as 8 columns.
        with path.open("rb") as fh:
            for raw_line in fh:
                count = raw_line.count(b",") + 1
                if count > 2:
                    ncols = count
                    break
            else:
                ncols = 8
    layout = _LAYOUTS.get((kind, ncols))
    if layout is None:
        raise AvaFormatError(path, f"expected 7 or 8 columns, got {ncols}", line=lineno, hint=_layout_hint(kind))
    return layout


def _python_fallback(
    path: Path, kind: str, layout: _Layout, arrow_error: Exception, unterminated: bool, options: dict[str, bool]
) -> _Raw:
    """Parse line by line after pyarrow gave up: raise the first problem with its line number, or
    return the rows when the file is fine for us but not for pyarrow (2-column boxless rows)."""
    raw, error = _PythonParser(
        path, kind, layout, allow_boxless_rows=options["allow_boxless_rows"], strict_person_ids=options["strict_person_ids"]
    ).parse()
    if error is not None:
        # Problems in the rows before the syntax error come first.
        _validate(raw, path, kind, unterminated=False, **options)
        raise error from None
    if not raw.boxless and raw.person_junk is None:
        raise AvaFormatError(path, f"could not parse the file: {arrow_error}") from None
    return raw


def read_ava_csv(
    path: str | Path,
    *,
    kind: Kind,
    keep_action_ids: Collection[int] | None = None,
    allow_boxless_rows: bool = False,
    validate_boxes: bool = True,
    strict_person_ids: bool = False,
) -> AvaTable:
    """Read an AVA ground-truth or detection CSV into an :class:`AvaTable`.

    Args:
        path: the CSV (no header; 7 or 8 columns, see the module docstring).
        kind: ``"groundtruth"`` (7th column action id, optional 8th person id) or
            ``"detections"`` (8 columns with action id and score, or 7 with score only).
        keep_action_ids: keep only rows with these action ids (e.g. the 60 evaluated classes);
            rows are validated before they are filtered.
        allow_boxless_rows: accept rows that give a keyframe but no box (``vid,0902`` or empty
            box fields); they are collected in ``table.boxless`` instead of being an error.
        validate_boxes: reject boxes outside ``[0, 1]`` (+-1e-3) and, for ground truth, inverted
            boxes. Detections with zero or negative area are never an error (evaluation drops them).
        strict_person_ids: a person id that is not an integer (real AVA rows contain ``3_``) or is
            below -1 is an error instead of a warning with the id set to -1.

    Raises:
        InputFileError: the file is missing.
        AvaFormatError: a malformed file, naming the first bad line and what is wrong there.
    """
    path = check_readable(path, "AVA CSV")
    layout = _choose_layout(path, kind, allow_boxless_rows)
    unterminated = _last_byte(path) not in (b"\n", b"\r", b"")
    options = dict(allow_boxless_rows=allow_boxless_rows, validate_boxes=validate_boxes, strict_person_ids=strict_person_ids)
    try:
        raw = _read_arrow(path, layout)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as arrow_error:
        raw = None
        if layout.has("person_id") and not strict_person_ids:
            # Most often a non-integer person id (real AVA files contain "3_"): retry fast with
            # that column read as text before falling back to the line-by-line parser.
            try:
                raw = _read_arrow(path, layout, person_as_text=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raw = None
        if raw is None:
            raw = _python_fallback(path, kind, layout, arrow_error, unterminated, options)
    table = _validate(raw, path, kind, unterminated=unterminated, **options)
    if keep_action_ids is not None:
        table = table.select(np.isin(table.action_id, np.fromiter(keep_action_ids, dtype=np.int64)))
    return table


def _digits_to_strings(ints: np.ndarray, int_digits: int, decimals: int) -> pa.Array:
    """Format non-negative integers ``< 10**(int_digits + decimals)`` as fixed-width decimal
    strings with ``decimals`` places (``1230, 1, 3 -> "1.230"``), in numpy: ~10x faster than
    pyarrow's float formatting, which dominates writing large CSVs."""
    n_digits = int_digits + decimals
    width = n_digits + (1 if decimals else 0)
    # Column-major (one contiguous row of characters per position), int32 arithmetic where it
    # fits, then a single transpose: ~4x faster than filling a row-major [N, width] array.
    chars_t = np.empty((width, len(ints)), dtype=np.uint8)
    rest = ints.astype(np.int32) if n_digits <= 9 else ints.astype(np.int64, copy=True)
    pos = width - 1
    for _ in range(n_digits):
        if decimals and pos == int_digits:
            chars_t[pos] = ord(".")
            pos -= 1
        quotient = rest // 10
        chars_t[pos] = rest - quotient * 10 + ord("0")
        rest = quotient
        pos -= 1
    chars = np.ascontiguousarray(chars_t.T)
    # Wrap the bytes as an arrow string array without copying: row i is chars[i*width:(i+1)*width].
    n = len(ints)
    large = n * width >= 2**31 - 1
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64 if large else np.int32)
    kind = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(offsets), pa.py_buffer(chars.reshape(-1))])


def _float_strings(values: np.ndarray, decimals: int | None) -> pa.Array:
    """Text of a float64 column that reads back to exactly the same floats.

    Values in ``[0, 10)`` that are exact with 3 or 6 decimals (AVA boxes, rounded scores) take a
    fast fixed-point path (``0.002``, ``0.500000``); anything else is written in its shortest
    round-trip form by pyarrow. With ``decimals`` the values are rounded first.
    """
    if decimals is not None:
        values = np.round(values, decimals)
    if len(values) and np.isfinite(values).all() and values.min() >= 0 and values.max() < 10:
        for places in (3, 6) if decimals is None else (decimals,):
            scale = 10.0**places
            ints = np.rint(values * scale)
            if np.array_equal(ints / scale, values):
                return _digits_to_strings(ints.astype(np.int64), 1, places)
    return pa.array(values).cast(pa.string())


def _timestamp_strings(timestamp: np.ndarray) -> pa.Array:
    """``%04d`` for whole seconds (``902 -> "0902"``), the shortest exact repr otherwise."""
    whole = np.isfinite(timestamp) & (timestamp == np.floor(timestamp))
    if whole.all() and (len(timestamp) == 0 or (timestamp.min() >= 0 and timestamp.max() < 10000)):
        return _digits_to_strings(timestamp.astype(np.int64), 4, 0)
    padded = pc.utf8_lpad(pa.array(np.where(whole, timestamp, 0).astype(np.int64)).cast(pa.string()), width=4, padding="0")
    if whole.all():
        return padded
    return pc.if_else(pa.array(whole), padded, pa.array(timestamp).cast(pa.string()))


def write_ava_csv(path: str | Path, table: AvaTable, *, decimals: int | None = None) -> None:
    """Write ``table`` as an AVA CSV (vectorised; no header).

    Layout: ground truth gets 8 columns, or 7 when every person id is -1 (unknown); detections get
    8 columns (action id, score), or 7 (score only) when every action id is -1. Whole-second
    timestamps are written ``%04d``. Every float is written so that it reads back as the identical
    float64: 3 or 6 fixed decimals when that is exact (``0.002``, ``0.998163``), otherwise the
    shortest round-trip form. ``decimals`` rounds boxes and scores first, which keeps files small
    and fast to write for model outputs (e.g. ``decimals=6``). Boxless keyframes are appended as
    ``video_id,timestamp`` rows. The file is written under a temporary name and renamed at the
    end, so an interrupted write never leaves a truncated CSV behind.
    """
    path = Path(path)
    n = len(table)
    video_dict = pa.DictionaryArray.from_arrays(pa.array(table.video_index, pa.int32()), pa.array(table.videos.astype(str)))
    columns: dict[str, pa.Array] = {
        "video_id": video_dict.cast(pa.string()),
        "timestamp": _timestamp_strings(table.timestamp),
    }
    for j, name in enumerate(_BOX):
        columns[name] = _float_strings(np.ascontiguousarray(table.boxes[:, j]), decimals)
    if table.score is None:
        columns["action_id"] = pa.array(table.action_id.astype(np.int64))
        if n == 0 or (table.person_id != -1).any():
            columns["person_id"] = pa.array(table.person_id.astype(np.int64))
    else:
        if n == 0 or (table.action_id != -1).any():
            columns["action_id"] = pa.array(table.action_id.astype(np.int64))
        columns["score"] = _float_strings(table.score, decimals)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with pa.OSFile(str(tmp), "wb") as sink:
        if n:
            pacsv.write_csv(pa.table(columns), sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
        for video_id, stamp in table.boxless:
            sink.write(f"{video_id},{_format_stamp(stamp)}\n".encode())
    tmp.replace(path)  # never leave a half-written CSV under the real name


def _format_stamp(stamp: float) -> str:
    return f"{int(stamp):04d}" if float(stamp).is_integer() else repr(float(stamp))


def read_exclusions(path: str | Path) -> set[KeyframeKey]:
    """Read excluded keyframes (``video_id,timestamp`` per line; ``902`` and ``0902`` alike).

    Blank lines at the end are tolerated, anywhere else they are an error.
    """
    path = check_readable(path, "exclusions file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise AvaFormatError(path, "not UTF-8 text") from None
    while lines and not lines[-1].strip():
        lines.pop()
    keys: set[KeyframeKey] = set()
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            raise AvaFormatError(path, "blank line", line=lineno, hint="remove it")
        fields = text.split(",")
        if len(fields) != 2:
            raise AvaFormatError(path, f"expected 2 columns (video_id,timestamp), got {len(fields)}", line=lineno)
        try:
            keys.add(KeyframeKey(fields[0].strip() or _raise("empty video_id"), parse_integer_second(fields[1].strip(), what="excluded keyframe")))
        except ValueError as exc:
            raise AvaFormatError(path, str(exc), line=lineno) from None
    return keys


def _raise(message: str) -> str:
    raise ValueError(message)


def write_exclusions(path: str | Path, keys: Iterable[KeyframeKey]) -> None:
    """Write keyframes as sorted ``video_id,tttt`` lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k.image_key}\n" for k in sorted(set(keys))))
