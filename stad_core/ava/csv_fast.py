"""Fast path of the AVA CSV reader: pyarrow's streaming CSV parser, block by block into numpy.

pyarrow parses blocks with explicit column types (a large file as two parts in two threads,
see :func:`parse_fast`); the video column is dictionary-encoded, so its codes become
``video_index`` directly (never N Python strings), and each block is copied straight into
preallocated numpy columns (read as views of the arrow buffers). Streaming keeps one block of
arrow memory alive: peak memory stays near the size of the result (~55 bytes a row for
detections). While a block is in cache, each column's bounds are noted (:class:`ColumnSummary`)
so that validation need not pass over a clean column again.

pyarrow reports no line numbers: anything it cannot parse raises ``pyarrow.ArrowInvalid`` and
the reader hands the file to the diagnostic path, which names the line. Every line is one row
(``ignore_empty_lines=False``, no quoting), so row ``i`` is line ``i + 1``.
"""

from __future__ import annotations

import io
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from stad_core.ava.csv_columns import (
    BOX,
    DTYPES,
    MAX_LISTED_WARNINGS,
    ColumnSummary,
    CsvColumns,
    Layout,
    line_dtype,
)

#: pyarrow reads the file in blocks of this many bytes, parsed in parallel; 4 MiB means fewer
#: blocks to translate than the 1 MiB default at the same speed. Tests shrink it.
BLOCK_SIZE = 1 << 22

_ARROW_TYPES: dict[str, pa.DataType] = {
    "video_id": pa.dictionary(pa.int32(), pa.string()),
    "timestamp": pa.float64(),
    **{name: pa.float64() for name in BOX},
    "action_id": pa.int32(),  # larger values fail here and are reported by the diagnostic path
    "person_id": pa.int64(),
    "score": pa.float64(),
}


class _Buffer:
    """Growable numpy output columns, filled block by block.

    Capacity is estimated from the first block (bytes per row) so the arrays are allocated once;
    ``np.empty`` pages that are never written cost no memory, and a wrong estimate only means a
    resize.
    """

    def __init__(self, names: tuple[str, ...], capacity: int) -> None:
        self.n = 0
        self.estimate: int | None = None  # file size while the capacity is a guess
        self._lock = threading.Lock()
        self.video_index = np.empty(capacity, dtype=np.int32)
        self.line = np.empty(capacity, dtype=np.int32 if capacity < 1 << 31 else np.int64)
        self.boxes = np.empty((capacity, 4), dtype=np.float64)
        self.values = {name: np.empty(capacity, dtype=DTYPES[name]) for name in names[1:] if name not in BOX}
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
        self.line = grow(self.line) if new < 1 << 31 else grow(self.line).astype(np.int64)
        self.values = {k: grow(v) for k, v in self.values.items()}
        self.nulls = {k: np.concatenate([v[: self.n], np.zeros(new - self.n, bool)]) for k, v in self.nulls.items()}

    def null_mask(self, name: str) -> np.ndarray:
        with self._lock:  # two readers may find the first null of a column at once
            if name not in self.nulls:
                self.nulls[name] = np.zeros(self.capacity, dtype=bool)
            return self.nulls[name]


def _person_ids_from_text(col: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised person-id column read as text: ``(ids [n] int64 (-1 for junk), junk [n] bool,
    empty [n] bool)``. A fractional id (``0.998``: a detections file read as ground truth) raises
    ArrowInvalid so that the diagnostic path reports it with its line number."""
    text = pc.utf8_trim_whitespace(col)
    empty = pc.equal(text, "")
    integral = pc.match_substring_regex(text, r"^-?[0-9]{1,18}$")
    if pc.any(pc.match_substring(text, ".")).as_py():
        raise pa.ArrowInvalid("fractional person id")
    ids = pc.cast(pc.if_else(integral, text, "-1"), pa.int64()).to_numpy(zero_copy_only=False)
    junk = pc.invert(pc.or_(integral, empty)).to_numpy(zero_copy_only=False)
    return ids, junk, empty.to_numpy(zero_copy_only=False)


def parse_fast(path: Path, layout: Layout, *, person_as_text: bool = False) -> CsvColumns:
    """Parse ``path`` with pyarrow into :class:`CsvColumns` (line numbers ``1..N``).

    ``person_as_text`` reads the person-id column as strings and tolerates non-integers (real AVA
    files contain ``3_``) vectorised. Raises ``pyarrow.ArrowInvalid`` / ``ArrowTypeError`` on
    anything it cannot parse.

    (Timestamps stay floats although AVA keyframes are whole seconds: pyarrow's integer parser
    would be ~10% faster over the whole file, but it also takes ``0x10`` for 16.)

    A file of at least ``SPLIT_BYTES`` is parsed as two parts (cut after a newline) by two
    streaming readers in two threads -- pyarrow's streaming reader parses one block at a time,
    and its whole-file reader would hold the whole arrow table besides the numpy result. Both
    write straight into one set of columns, allocated once for an estimated row count (pages
    never written cost no memory): the first reader from row 0, the second from the first
    part's line count, which it counts itself before it starts (a vectorised pass over ~half the
    file, ~0.05 s) while the first reader is already parsing; the first part is a bit larger so
    that both finish together.
    """
    types = {name: _ARROW_TYPES[name] for name in layout.names}
    if person_as_text and layout.has("person_id"):
        types["person_id"] = pa.string()
    size = path.stat().st_size
    plan = _plan_split(path, size) if size >= SPLIT_BYTES and os.cpu_count() != 1 else None
    if plan is None:
        return _parse_serial(path, layout, types, size)
    cut, capacity = plan
    out = _Buffer(layout.names, capacity)
    results: list[_Part | BaseException | None] = [None, None]
    first_rows = [-1]

    def work(i: int) -> None:
        try:
            if i == 0:
                results[0] = _parse_into(_Range(path, 0, cut), layout, types, out, 0)
            else:
                first_rows[0] = _count_newlines(path, cut)
                results[1] = _parse_into(_tail(path, cut), layout, types, out, first_rows[0])
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the calling thread
            results[i] = exc

    second = threading.Thread(target=work, args=(1,))
    second.start()
    work(0)
    second.join()
    # Hand back what the arrow pool cached for the two readers' blocks, so that the numpy arrays
    # computed next (the evaluation's) do not come on top of it.
    pa.default_memory_pool().release_unused()
    a, b = results
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, _MoreRowsThanLines):
            raise r
    if not (isinstance(a, _Part) and isinstance(b, _Part)) or a.rows != first_rows[0]:
        # More rows than the estimate, or line ends pyarrow counts differently (a lone CR):
        # parse the file in one piece.
        return _parse_serial(path, layout, types, size)
    total_rows = a.rows + b.rows
    # Each part numbered its videos on its own, by first appearance: one lookup per part takes
    # its codes to those of the sorted video ids, in place, both parts at once.
    vocabulary = {v: i for i, v in enumerate(a.vocabulary)}
    to_joint = np.array([vocabulary.setdefault(v, len(vocabulary)) for v in b.vocabulary], dtype=np.int32)
    videos, rank = _sorted_ids(vocabulary)
    remaps = [(out.video_index[: a.rows], rank[: len(a.vocabulary)]), (out.video_index[a.rows : total_rows], rank[to_joint])]
    threads = [threading.Thread(target=_remap_in_place, args=remap) for remap in remaps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.n = total_rows
    junk_text = dict(sorted({**a.junk_text, **b.junk_text}.items())[:MAX_LISTED_WARNINGS])
    summary = a.summary if b.rows == 0 else b.summary if a.rows == 0 else a.summary.merge(b.summary)
    return _columns(layout, out, videos, a.junk_rows + b.junk_rows, junk_text, summary)


def _sorted_ids(vocabulary: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``([V] object sorted video ids, [V] int32 rank of each first-appearance code)``."""
    names = np.array(list(vocabulary), dtype=str)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return names[order].astype(object), rank


def _remap_in_place(codes: np.ndarray, lut: np.ndarray) -> None:
    """``codes[i] = lut[codes[i]]`` without a copy of ``codes`` (skipped when ``lut`` is the
    identity: the videos came in sorted order)."""
    if len(codes) and not np.array_equal(lut, np.arange(len(lut))):
        np.take(lut, codes, out=codes, mode="clip")  # no buffering; each element read before written


class _MoreRowsThanLines(Exception):
    """A reader found more rows than there is room for (more than estimated, or a lone CR
    ending a row where the line count saw none)."""


#: Files at least this large are parsed in two parts by two threads; tests shrink it.
SPLIT_BYTES = 64 << 20

#: Whether each streaming reader also parses ahead on arrow's thread pool. With two cores the
#: two readers already use both; arrow's threads would only add switching and memory.
ARROW_THREADS = (os.cpu_count() or 1) > 2

#: Share of the bytes that the first of the two readers parses: the second one counts the first
#: part's lines before it starts, ~10% of the time it takes to parse them.
FIRST_SHARE = 0.53

#: The columns get room for this many times the row count estimated from the file's first bytes,
#: plus ``CAPACITY_SLACK`` rows.
CAPACITY_MARGIN = 1.5
CAPACITY_SLACK = 1024


def _plan_split(path: Path, size: int) -> tuple[int, int] | None:
    """``(cut, capacity)``: ``cut`` is the byte after the first newline at or past
    ``FIRST_SHARE`` of the file, ``capacity`` the rows to allocate (estimated from the line
    length of the first 4 MiB). None when there is no such newline or no newline at the start."""
    with path.open("rb") as fh:
        head = fh.read(min(size, 4 << 20))
        fh.seek(int(size * FIRST_SHARE))
        tail_from = fh.tell()
        cut = 0
        while chunk := fh.read(1 << 16):
            at = chunk.find(b"\n")
            if at >= 0:
                cut = tail_from + at + 1
                break
            tail_from += len(chunk)
    newlines = head.count(b"\n")
    if not cut or cut >= size or newlines == 0:
        return None
    capacity = int(size / (len(head) / newlines) * CAPACITY_MARGIN) + CAPACITY_SLACK
    return cut, capacity


#: Bytes of the file mapped at a time while counting lines: file pages count towards the
#: process's resident memory while they are mapped.
_COUNT_WINDOW = 64 << 20


def _count_newlines(path: Path, end: int) -> int:
    """``\\n`` bytes in ``path[:end]``, counted with numpy on memory-mapped windows (no copy)."""
    total = 0
    with path.open("rb") as fh:
        for lo in range(0, end, _COUNT_WINDOW):
            length = min(_COUNT_WINDOW, end - lo)
            with mmap.mmap(fh.fileno(), length, access=mmap.ACCESS_READ, offset=lo) as window:
                data = np.frombuffer(window, dtype=np.uint8)
                for s in range(0, length, 1 << 22):  # 4 MiB of booleans at a time
                    total += int(np.count_nonzero(data[s : s + (1 << 22)] == 10))
                del data
    return total


def _tail(path: Path, begin: int) -> pa.NativeFile:
    """The file from byte ``begin`` to its end, read natively (no Python in the loop)."""
    f = pa.OSFile(str(path))
    f.seek(begin)
    return f


class _Range(io.RawIOBase):
    """Bytes ``[begin, end)`` of a file as a readable stream (one half for one reader)."""

    def __init__(self, path: Path, begin: int, end: int) -> None:
        self._fh = path.open("rb", buffering=0)
        self._fh.seek(begin)
        self._left = end - begin

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)[: self._left]
        got = self._fh.readinto(view) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._fh.close()
        super().close()


def _nan_min(a: float, b: float) -> float:
    return a if a != a else b if b != b else min(a, b)  # NaN wins, as in numpy


def _nan_max(a: float, b: float) -> float:
    return a if a != a else b if b != b else max(a, b)


class _Summary:
    """:class:`ColumnSummary` of one reader's blocks, collected while each block is in cache."""

    #: Action ids are collected as a presence table while they stay below this.
    ACTION_LIMIT = 1 << 16

    def __init__(self) -> None:
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self.inverted = False
        self.actions: np.ndarray | None = np.zeros(self.ACTION_LIMIT, dtype=bool)

    def add(self, name: str, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        key = "boxes" if name in BOX else name
        low, high = values.min().item(), values.max().item()
        self.low[key] = _nan_min(self.low.get(key, low), low)
        self.high[key] = _nan_max(self.high.get(key, high), high)
        if name == "action_id" and self.actions is not None:
            if low >= 0 and high < self.ACTION_LIMIT:
                self.actions[: high + 1] |= np.bincount(values, minlength=high + 1) > 0
            else:
                self.actions = None

    def add_boxes(self, x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> None:
        self.inverted = self.inverted or bool(((x1 > x2) | (y1 > y2)).any())

    def merge(self, other: _Summary) -> _Summary:
        both = _Summary()
        for key in self.low.keys() & other.low.keys():
            both.low[key] = _nan_min(self.low[key], other.low[key])
            both.high[key] = _nan_max(self.high[key], other.high[key])
        both.inverted = self.inverted or other.inverted
        both.actions = None if self.actions is None or other.actions is None else self.actions | other.actions
        return both

    def result(self, layout: Layout) -> ColumnSummary:
        return ColumnSummary(
            dict(self.low),
            dict(self.high),
            self.inverted if "boxes" in self.low else None,
            np.flatnonzero(self.actions) if self.actions is not None and layout.has("action_id") else None,
        )


@dataclass
class _Part:
    """What one reader found besides the rows it wrote: row count, its own video codes (in order
    of first appearance), rows with junk person ids and the text of the first few, and the
    bounds of its columns."""

    rows: int
    vocabulary: list[str]
    junk_rows: list[np.ndarray]
    junk_text: dict[int, str]
    summary: _Summary


def _parse_serial(path: Path, layout: Layout, types: dict[str, pa.DataType], size: int) -> CsvColumns:
    out = _Buffer(layout.names, 0)
    out.estimate = size
    part = _parse_into(path, layout, types, out, 0)
    out.n = part.rows
    videos, rank = _sorted_ids({v: i for i, v in enumerate(part.vocabulary)})
    _remap_in_place(out.video_index[: part.rows], rank)
    return _columns(layout, out, videos, part.junk_rows, part.junk_text, part.summary)


def _parse_into(
    source: Path | pa.NativeFile | io.RawIOBase, layout: Layout, types: dict[str, pa.DataType], out: _Buffer, row0: int
) -> _Part:
    """Stream-parse ``source`` into ``out`` from row ``row0`` on. ``out`` either has room for
    every row (two halves in parallel) or grows (``out.estimate`` set: one reader alone)."""
    stream = source if isinstance(source, (Path, pa.NativeFile)) else pa.PythonFile(source, mode="r")
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=list(layout.names), use_threads=ARROW_THREADS, block_size=BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    junk_rows: list[np.ndarray] = []
    junk_text: dict[int, str] = {}
    vocabulary: dict[str, int] = {}  # video id -> code in order of first appearance
    summary = _Summary()
    box_values: dict[str, np.ndarray] = {}
    lo = row0
    try:
        for batch in reader:
            rows = batch.num_rows
            if out.estimate is not None:
                if out.capacity == 0:
                    # Rows in the whole file ~ size / (bytes per row of the first block), plus a margin.
                    per_row = max(min(out.estimate, BLOCK_SIZE) / max(rows, 1), 1.0)
                    out.reserve(int(out.estimate / per_row * 1.1) + rows + 16)
                out.n = lo
                out.reserve(rows)
            elif lo + rows > out.capacity:
                raise _MoreRowsThanLines  # a lone CR ends a row too: the caller parses serially
            hi = lo + rows
            box_values.clear()
            # Every line is one row: line numbers are row numbers + 1 (written here, in parallel).
            out.line[lo:hi] = np.arange(lo + 1, hi + 1, dtype=out.line.dtype)
            video = batch.column(0)
            # Each block has its own small dictionary: translate it to this reader's codes.
            lut = np.array([vocabulary.setdefault(v, len(vocabulary)) for v in video.dictionary.to_pylist()], dtype=np.int32)
            out.video_index[lo:hi] = lut[_values(video.indices)] if len(lut) else 0
            for j, name in enumerate(layout.names[1:], start=1):
                col = batch.column(j)
                if name == "person_id" and types[name] == pa.string():
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
                values = _values(col)
                target = out.boxes[lo:hi, BOX.index(name)] if name in BOX else out.values[name][lo:hi]
                target[...] = values
                summary.add(name, values)  # the block is in cache now: validation skips a pass
                if name in BOX:
                    box_values[name] = values
            if len(box_values) == len(BOX):
                summary.add_boxes(*(box_values[name] for name in BOX))
            lo = hi
    finally:
        if not isinstance(source, Path):
            source.close()
    return _Part(lo - row0, list(vocabulary), junk_rows, junk_text, summary)


#: Arrow types whose values buffer :func:`_values` reads directly.
_NUMPY_TYPES = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float64(): np.float64}


def _values(col: pa.Array) -> np.ndarray:
    """``[n]`` values of one block's column as a numpy view of its arrow buffer. Arrow's own
    ``to_numpy`` goes through its pandas layer (importing pandas costs ~0.2 s) and copies
    dictionary codes (~2 ms a block)."""
    dtype = _NUMPY_TYPES.get(col.type)
    if dtype is None or col.null_count:
        return col.to_numpy(zero_copy_only=False)
    itemsize = np.dtype(dtype).itemsize
    return np.frombuffer(col.buffers()[1], dtype=dtype, count=len(col), offset=col.offset * itemsize)


def _columns(
    layout: Layout,
    out: _Buffer,
    videos: np.ndarray,
    junk_rows: list[np.ndarray],
    junk_text: dict[int, str],
    summary: _Summary,
) -> CsvColumns:
    """The parsed rows as :class:`CsvColumns`; ``videos`` [V] sorted ids, which the codes in
    ``out.video_index`` already index."""
    n = out.n
    video_index = out.video_index[:n]
    columns = {name: values[:n] for name, values in out.values.items()}
    columns["boxes"] = out.boxes[:n]
    nulls = {name: mask[:n] for name, mask in out.nulls.items()}
    person_junk = None
    if junk_rows:
        person_junk = np.zeros(n, dtype=bool)
        person_junk[np.concatenate(junk_rows)] = True
    line = out.line[:n].astype(line_dtype(n), copy=False)
    return CsvColumns(layout, videos, video_index, columns, nulls, line, [], [], person_junk, junk_text, summary.result(layout))
