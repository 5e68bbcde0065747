"""Fast path of the AVA CSV reader: pyarrow's streaming CSV parser, block by block into numpy.

pyarrow parses blocks with explicit column types (a large file as two halves in two threads,
see :func:`parse_fast`); the video column is
dictionary-encoded, so its codes become ``video_index`` directly (never N Python strings), and
each block is copied straight into preallocated numpy columns. Streaming keeps one block of arrow
memory alive: peak memory stays near the size of the result (~60 bytes a row for detections).

pyarrow reports no line numbers: anything it cannot parse raises ``pyarrow.ArrowInvalid`` and
the reader hands the file to the diagnostic path, which names the line. Every line is one row
(``ignore_empty_lines=False``, no quoting), so row ``i`` is line ``i + 1``.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from stad_core.ava.csv_columns import BOX, DTYPES, MAX_LISTED_WARNINGS, CsvColumns, Layout, sorted_vocabulary

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

    A file of at least ``SPLIT_BYTES`` is parsed as two halves (cut after a newline) by two
    streaming readers in two threads -- pyarrow's streaming reader parses one block at a time,
    and its whole-file reader would hold the whole arrow table besides the numpy result. The
    lines of the first half are counted first, so each half writes straight into its rows of
    columns allocated once at their exact size.
    """
    size = path.stat().st_size
    parts = _split(path, size) if size >= SPLIT_BYTES and os.cpu_count() != 1 else None
    if parts is None:
        return _parse_serial(path, layout, person_as_text, size)
    (cut, first_rows), total_rows = parts
    out = _Buffer(layout.names, total_rows)
    results: list[_Part | BaseException | None] = [None, None]

    def work(i: int, begin: int, end: int, row0: int) -> None:
        try:
            source = _Range(path, begin, end) if end < size else _tail(path, begin)
            results[i] = _parse_into(source, layout, person_as_text, out, row0)
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the calling thread
            results[i] = exc

    second = threading.Thread(target=work, args=(1, cut, size, first_rows))
    second.start()
    work(0, 0, cut, 0)
    second.join()
    # Hand back what the arrow pool cached for the two readers' blocks, so that the numpy arrays
    # computed next (the evaluation's) do not come on top of it.
    pa.default_memory_pool().release_unused()
    a, b = results
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, _MoreRowsThanLines):
            raise r
    if not (isinstance(a, _Part) and isinstance(b, _Part)) or a.rows != first_rows or first_rows + b.rows != total_rows:
        # Line ends pyarrow counts differently (a lone CR): parse the file in one piece.
        return _parse_serial(path, layout, person_as_text, size)
    # The second half numbered its videos on its own: map them into the first half's codes.
    vocabulary = {v: i for i, v in enumerate(a.vocabulary)}
    lut = np.array([vocabulary.setdefault(v, len(vocabulary)) for v in b.vocabulary], dtype=np.int32)
    if len(lut):
        tail = out.video_index[first_rows:total_rows]
        tail[...] = lut[tail]
    out.n = total_rows
    junk_text = dict(sorted({**a.junk_text, **b.junk_text}.items())[:MAX_LISTED_WARNINGS])
    return _columns(layout, out, vocabulary, a.junk_rows + b.junk_rows, junk_text)


class _MoreRowsThanLines(Exception):
    """pyarrow found more rows than ``\\n`` line ends (a lone CR ends a row too)."""


#: Files at least this large are parsed in two halves by two threads; tests shrink it.
SPLIT_BYTES = 64 << 20


def _split(path: Path, size: int) -> tuple[tuple[int, int], int] | None:
    """``((cut, lines before cut), lines in the file)``: ``cut`` is the byte after the first
    newline at or past the middle. None when there is no such newline. Counts ``\\n`` in 16 MiB
    reads (~0.1 s a GB from the page cache); an unterminated last line counts as a line."""
    middle = size // 2
    cut = first = total = 0
    buffer = bytearray(16 << 20)
    offset = 0
    last = 0
    with path.open("rb", buffering=0) as fh:
        while got := fh.readinto(buffer):
            if not cut and offset + got > middle:
                at = buffer.find(b"\n", max(middle - offset, 0), got)
                if at >= 0:
                    cut = offset + at + 1
                    first = total + buffer.count(b"\n", 0, at + 1)
            total += buffer.count(b"\n", 0, got)
            last = buffer[got - 1]
            offset += got
    if not cut or cut >= size:
        return None
    if offset and last != ord("\n"):
        total += 1
    return (cut, first), total


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


@dataclass
class _Part:
    """What one reader found besides the rows it wrote: row count, its own video codes (in order
    of first appearance), rows with junk person ids and the text of the first few."""

    rows: int
    vocabulary: list[str]
    junk_rows: list[np.ndarray]
    junk_text: dict[int, str]


def _parse_serial(path: Path, layout: Layout, person_as_text: bool, size: int) -> CsvColumns:
    out = _Buffer(layout.names, 0)
    out.estimate = size
    part = _parse_into(path, layout, person_as_text, out, 0)
    out.n = part.rows
    vocabulary = {v: i for i, v in enumerate(part.vocabulary)}
    return _columns(layout, out, vocabulary, part.junk_rows, part.junk_text)


def _parse_into(
    source: Path | pa.NativeFile | io.RawIOBase, layout: Layout, person_as_text: bool, out: _Buffer, row0: int
) -> _Part:
    """Stream-parse ``source`` into ``out`` from row ``row0`` on. ``out`` either has room for
    every row (two halves in parallel) or grows (``out.estimate`` set: one reader alone)."""
    stream = source if isinstance(source, (Path, pa.NativeFile)) else pa.PythonFile(source, mode="r")
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=list(layout.names), use_threads=True, block_size=BLOCK_SIZE),
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
    junk_rows: list[np.ndarray] = []
    junk_text: dict[int, str] = {}
    vocabulary: dict[str, int] = {}  # video id -> code in order of first appearance
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
            video = batch.column(0)
            # Each block has its own small dictionary: translate it to this reader's codes.
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
                target = out.boxes[lo:hi, BOX.index(name)] if name in BOX else out.values[name][lo:hi]
                target[...] = col.to_numpy(zero_copy_only=False)
            lo = hi
    finally:
        if not isinstance(source, Path):
            source.close()
    return _Part(lo - row0, list(vocabulary), junk_rows, junk_text)


def _columns(
    layout: Layout, out: _Buffer, vocabulary: dict[str, int], junk_rows: list[np.ndarray], junk_text: dict[int, str]
) -> CsvColumns:
    n = out.n
    names = np.array(list(vocabulary), dtype=object)
    videos, video_index = sorted_vocabulary(names, out.video_index[:n])
    columns = {name: values[:n] for name, values in out.values.items()}
    columns["boxes"] = out.boxes[:n]
    nulls = {name: mask[:n] for name, mask in out.nulls.items()}
    person_junk = None
    if junk_rows:
        person_junk = np.zeros(n, dtype=bool)
        person_junk[np.concatenate(junk_rows)] = True
    line = np.arange(1, n + 1, dtype=np.int64)
    return CsvColumns(layout, videos, video_index, columns, nulls, line, [], [], person_junk, junk_text)
