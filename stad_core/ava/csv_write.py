"""Writing AVA CSVs: ground truth, detections/results (:func:`write_ava_csv`) and exclusions.

Formatting is vectorised (numpy digits wrapped as arrow strings, then pyarrow's CSV writer), and
every float is written so that it reads back as the identical float64.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from stad_core.atomic import atomic_write
from stad_core.ava.csv_columns import BOX
from stad_core.ava.keys import KeyframeKey
from stad_core.ava.table import AvaTable


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
    ``video_id,timestamp`` rows. The write is atomic (:func:`stad_core.atomic.atomic_write`): an
    interrupted write never leaves a truncated CSV behind.
    """
    n = len(table)
    video_dict = pa.DictionaryArray.from_arrays(pa.array(table.video_index, pa.int32()), pa.array(table.videos.astype(str)))
    columns: dict[str, pa.Array] = {
        "video_id": video_dict.cast(pa.string()),
        "timestamp": _timestamp_strings(table.timestamp),
    }
    for j, name in enumerate(BOX):
        columns[name] = _float_strings(np.ascontiguousarray(table.boxes[:, j]), decimals)
    if table.score is None:
        columns["action_id"] = pa.array(table.action_id.astype(np.int64))
        if n == 0 or (table.person_id != -1).any():
            columns["person_id"] = pa.array(table.person_id.astype(np.int64))
    else:
        if n == 0 or (table.action_id != -1).any():
            columns["action_id"] = pa.array(table.action_id.astype(np.int64))
        columns["score"] = _float_strings(table.score, decimals)

    def write(tmp: Path) -> None:
        with pa.OSFile(str(tmp), "wb") as sink:
            if n:
                pacsv.write_csv(pa.table(columns), sink, pacsv.WriteOptions(include_header=False, quoting_style="none"))
            for video_id, stamp in table.boxless:
                sink.write(f"{video_id},{_format_stamp(stamp)}\n".encode())

    atomic_write(path, write)


def _format_stamp(stamp: float) -> str:
    return f"{int(stamp):04d}" if float(stamp).is_integer() else repr(float(stamp))


def write_exclusions(path: str | Path, keys: Iterable[KeyframeKey]) -> None:
    """Write keyframes as sorted ``video_id,tttt`` lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k.image_key}\n" for k in sorted(set(keys))))
