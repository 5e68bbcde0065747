"""Stage-output tables (parquet): person detections and the results history.

The dataset manifest and rejects tables are written by ``stad_core.ingest`` (their schemas live
there, beside the probing that fills them); these two are written by stages and read by others.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stad_core.atomic import atomic_write
from stad_core.ava import KeyframeDetections, KeyframeKey

# ---------------------------------------------------------------------------------------------
# Detections: one row per person box at a keyframe.

DETECTIONS_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("t", pa.float64()), ("x1", pa.float32()), ("y1", pa.float32()),
    ("x2", pa.float32()), ("y2", pa.float32()), ("score", pa.float32()), ("source", pa.string()),
    ("person_id", pa.int64()),  # nullable: null = the source has no ids; -1 = this id is unknown
])


def write_parquet(table: pa.Table, path: str | Path) -> int:
    """Write ``table`` atomically (a killed task never leaves a half-written file); returns its rows."""
    atomic_write(path, lambda tmp: pq.write_table(table, tmp), fsync=False)
    return len(table)


def write_detections(path: str | Path, detections: Sequence[KeyframeDetections]) -> int:
    """One parquet row per box (sorted by time; a keyframe without boxes has no row).

    ``person_id`` holds each keyframe's ``person_ids``, or nulls for keyframes that have none.
    """
    items = sorted(detections, key=lambda d: (d.key.video_id, d.key.timestamp))
    n = [len(d) for d in items]
    if not items:
        return write_parquet(DETECTIONS_SCHEMA.empty_table(), path)
    boxes = np.concatenate([d.boxes for d in items])
    ids = np.concatenate([np.zeros(len(d), np.int64) if d.person_ids is None else d.person_ids for d in items])
    no_ids = np.concatenate([np.full(len(d), d.person_ids is None) for d in items])
    table = pa.table({
        "video_id": np.repeat([d.key.video_id for d in items], n).astype(str),
        "t": np.repeat([float(d.key.timestamp) for d in items], n).astype(np.float64),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
        "score": np.concatenate([d.scores for d in items]),
        "source": np.repeat([d.source for d in items], n).astype(str),
        "person_id": pa.array(ids, pa.int64(), mask=no_ids),
    }, schema=DETECTIONS_SCHEMA)
    return write_parquet(table, path)


def merge_detections(parts: Sequence[str | Path], out: str | Path) -> int:
    """Concatenate per-video detection parts into one table at ``out``; returns its rows."""
    tables = [pq.read_table(p, schema=DETECTIONS_SCHEMA) for p in parts]
    return write_parquet(pa.concat_tables(tables) if tables else DETECTIONS_SCHEMA.empty_table(), out)


def read_detections(path: str | Path) -> dict[str, list[KeyframeDetections]]:
    """A detections table -> video id -> per-keyframe boxes (time order), keyed by ``KeyframeKey.at``:
    a whole second (AVA) stays an int, a frame keyframe of a tube dataset keeps its fractional time.

    A keyframe's ``person_ids`` are None when all its rows have a null ``person_id`` (or the file
    predates the column), else its ids with nulls read as -1.
    """
    table = pq.read_table(path, schema=DETECTIONS_SCHEMA)  # a column missing from an older file reads as nulls
    cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in DETECTIONS_SCHEMA.names
            if name != "person_id"}
    pid = table.column("person_id")
    has_id = pid.is_valid().to_numpy(zero_copy_only=False)
    ids = pc.fill_null(pid, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    boxes = np.stack([cols["x1"], cols["y1"], cols["x2"], cols["y2"]], axis=1).astype(np.float32)
    out: dict[str, list[KeyframeDetections]] = {}
    order = np.lexsort((cols["t"], cols["video_id"]))
    keys = list(zip(cols["video_id"][order].tolist(), cols["t"][order].tolist()))
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and keys[stop] == keys[start]:
            stop += 1
        rows = order[start:stop]
        vid, t = keys[start]
        out.setdefault(vid, []).append(KeyframeDetections(
            KeyframeKey.at(vid, t), boxes[rows], cols["score"][rows], str(cols["source"][rows[0]]),
            ids[rows] if has_id[rows].any() else None))
        start = stop
    return out


# ---------------------------------------------------------------------------------------------
# Results history: one row per evaluation that ran (paths workspace-relative).

HISTORY_SCHEMA = pa.schema([
    ("evaluated_at", pa.timestamp("s", tz="UTC")), ("head", pa.string()), ("split", pa.string()),
    ("mAP", pa.float64()), ("groups", pa.string()), ("epoch", pa.int64()), ("model_stage", pa.string()),
    ("model_key", pa.string()), ("extract_key", pa.string()), ("evaluate_key", pa.string()),
    ("bank", pa.string()), ("report", pa.string()), ("code_version", pa.string()),
])
_HISTORY_LOCK = threading.Lock()


def append_history(path: str | Path, row: dict[str, Any]) -> None:
    """Add one row (``groups`` a dict) to the history table at ``path`` (read + rewrite + atomic
    rename: the table is small). ``evaluated_at`` defaults to now. A row with the same
    ``evaluate_key`` (a forced or crashed-and-redone evaluation) is replaced, never duplicated."""
    row = {"evaluated_at": int(time.time()), **row, "groups": json.dumps(row["groups"])}
    path = Path(path)
    with _HISTORY_LOCK:
        table = pa.Table.from_pylist([row], schema=HISTORY_SCHEMA)
        if path.exists():
            old = pq.read_table(path, schema=HISTORY_SCHEMA)
            old = old.filter(pc.invert(pc.equal(old.column("evaluate_key"), row["evaluate_key"])))
            table = pa.concat_tables([old, table])
        write_parquet(table, path)


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Every history row, oldest first (empty when nothing was evaluated yet)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = pq.read_table(path, schema=HISTORY_SCHEMA).to_pylist()
    for row in rows:
        row["groups"] = json.loads(row["groups"])
    return rows
