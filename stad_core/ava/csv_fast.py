"""Fast path of the AVA CSV reader: pyarrow's streaming CSV parser, block by block into numpy.

pyarrow parses blocks in parallel with explicit column types; the video column is
dictionary-encoded, so its codes become ``video_index`` directly (never N Python strings), and
each block is copied straight into preallocated numpy columns. Streaming keeps one block of arrow
memory alive: peak memory stays near the size of the result (~60 bytes a row for detections).

pyarrow reports no line numbers: anything it cannot parse raises ``pyarrow.ArrowInvalid`` and
the reader hands the file to the diagnostic path, which names the line. Every line is one row
(``ignore_empty_lines=False``, no quoting), so row ``i`` is line ``i + 1``.
"""

from __future__ import annotations

from pathlib import Path

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
    """
    reader = pacsv.open_csv(
        path,
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
    size = path.stat().st_size
    junk_rows: list[np.ndarray] = []
    junk_text: dict[int, str] = {}
    out: _Buffer | None = None
    vocabulary: dict[str, int] = {}  # video id -> code in order of first appearance
    for batch in reader:
        rows = batch.num_rows
        if out is None:
            # Rows in the whole file ~ size / (bytes per row of the first block), plus a margin.
            per_row = max(min(size, BLOCK_SIZE) / max(rows, 1), 1.0)
            out = _Buffer(layout.names, int(size / per_row * 1.1) + rows + 16)
        out.reserve(rows)
        lo, hi = out.n, out.n + rows
        video = batch.column(0)
        # Each block has its own small dictionary: translate it to global codes.
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
        out.n = hi
    if out is None:
        out = _Buffer(layout.names, 0)
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
