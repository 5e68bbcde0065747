"""``detections.parquet``: round trips with and without person ids, older files without the
column, and ground-truth ids carried from the CSV through the detect task's part file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stad_core.stage_configs import DetectStageConfig
from storage.stages.detect import detect_video
from storage.tables import DETECTIONS_SCHEMA as SCHEMA
from storage.tables import merge_detections, read_detections, write_detections
from stad_core.ava import KeyframeDetections, KeyframeKey

OLD_SCHEMA = pa.schema([f for f in SCHEMA if f.name != "person_id"])  # before person ids


def _dets(ids: dict[int, list[int] | None]) -> list[KeyframeDetections]:
    rng = np.random.default_rng(0)
    out = []
    for t, person in ids.items():
        n = 2 if person is None else len(person)
        xy = rng.uniform(0, 0.5, (n, 2))
        out.append(KeyframeDetections(KeyframeKey("vid", t), np.hstack([xy, xy + 0.3]), rng.random(n), "src", person))
    return out


def test_round_trip_with_and_without_ids(tmp_path: Path) -> None:
    dets = _dets({903: [7, -1, 2], 902: None, 904: [0]})
    assert write_detections(tmp_path / "d.parquet", dets) == 6
    table = pq.read_table(tmp_path / "d.parquet")
    assert table.schema.field("person_id").type == pa.int64()
    assert table.column("person_id").null_count == 2  # the keyframe without ids
    back = {d.key.timestamp: d for d in read_detections(tmp_path / "d.parquet")["vid"]}
    assert sorted(back) == [902, 903, 904]
    for d in dets:
        got = back[d.key.timestamp]
        np.testing.assert_array_equal(got.boxes, d.boxes)
        np.testing.assert_array_equal(got.scores, d.scores)
        if d.person_ids is None:
            assert got.person_ids is None
        else:
            assert got.person_ids.dtype == np.int64 and got.person_ids.tolist() == d.person_ids.tolist()


def test_older_file_without_the_column_reads_without_ids(tmp_path: Path) -> None:
    old = pa.table({"video_id": ["a", "a", "b"], "t": [902.0, 902.0, 905.0], "x1": [0.1, 0.2, 0.0],
                    "y1": [0.1, 0.1, 0.0], "x2": [0.5, 0.6, 1.0], "y2": [0.9, 0.9, 1.0],
                    "score": [0.9, 0.8, 1.0], "source": ["p", "p", "p"]}, schema=OLD_SCHEMA)
    (tmp_path / "parts").mkdir()
    pq.write_table(old, tmp_path / "parts" / "a.parquet")
    dets = read_detections(tmp_path / "parts" / "a.parquet")
    assert [len(d) for d in dets["a"]] == [2] and [len(d) for d in dets["b"]] == [1]
    assert all(d.person_ids is None for ds in dets.values() for d in ds)
    # A stage output mixing an old part with a new one merges into the current schema.
    write_detections(tmp_path / "parts" / "c.parquet", [
        KeyframeDetections(KeyframeKey("c", 902), [[0, 0, 1, 1]], [1.0], "groundtruth", [3])])
    assert merge_detections([tmp_path / "parts" / f"{v}.parquet" for v in "ac"], tmp_path / "detections.parquet") == 4
    merged = read_detections(tmp_path / "detections.parquet")
    assert merged["a"][0].person_ids is None and merged["c"][0].person_ids.tolist() == [3]


def test_groundtruth_source_writes_person_ids(tmp_path: Path) -> None:
    gt = tmp_path / "gt.csv"
    gt.write_text(  # one row per (box, action); video w must not leak into v's part
        "v,0902,0.1,0.1,0.4,0.9,12,4\n"
        "v,0902,0.5,0.1,0.9,0.9,12,6\n"
        "v,0902,0.1,0.1,0.4,0.9,80,4\n"
        "v,0903,0.5,0.1,0.9,0.9,17,6\n"
        "w,0902,0.0,0.0,1.0,1.0,12,1\n"
    )
    counts = detect_video(video_id="v", stage_uri=str(tmp_path / "stage"), device="cpu", config=DetectStageConfig(),
                          path="unused.mp4", split="val", keyframes=[902.0, 903.0, 904.0], time_offset=0.0, force=False,
                          gt_csv=str(gt))
    assert counts == {"keyframes": 3, "boxes": 3}
    dets = read_detections(tmp_path / "stage" / "parts" / "v.parquet")["v"]
    assert [d.key.timestamp for d in dets] == [902, 903]
    assert [d.person_ids.tolist() for d in dets] == [[4, 6], [6]]
    assert all(d.source == "groundtruth" for d in dets)
