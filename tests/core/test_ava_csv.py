"""AVA ground-truth / detection CSVs and exclusions: real files, round trips, malformed input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from stad_core.ava import (
    AvaFormatError,
    AvaTable,
    KeyframeKey,
    read_ava_csv,
    read_exclusions,
    write_ava_csv,
    write_exclusions,
)
from stad_core.ava import csv_columns, csv_diagnose, csv_fast, csv_validate, csv_write
from stad_core.errors import InputFileError

POSE = "derenlei_AVA-II/ava_val_v2.1_pose_classes_only.csv"
HEAD = "edgeface/ava_val_v2.2_head342.csv"
HEAD_FIXED = "edgeface/ava_val_v2.2_head342_fixed.csv"
MM_GT = "mmaction2/tests_data_ava_dataset_ava_sample.csv"
MM_EXCL = "mmaction2/tests_data_ava_dataset_ava_excluded_timestamps_sample.csv"
VAL_EXCL = "tubelet-transformer/ava_val_excluded_timestamps_v2.1.csv"


def python_rows(path: Path) -> list[list[str]]:
    """Independent reference parse with the csv module."""
    with path.open(newline="") as fh:
        return [row for row in csv.reader(fh)]


def write(tmp_path: Path, text: str, name: str = "x.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


GOOD = "vidA,0902,0.1,0.2,0.5,0.6,12,0\nvidA,0902,0.1,0.2,0.5,0.6,17,0\nvidB,0903,0.0,0.0,1.0,1.0,80,1\n"


# -- real files -----------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_pose_file_seven_columns(shared_data: Path) -> None:
    table = read_ava_csv(shared_data / POSE, kind="groundtruth")
    assert len(table) == 93_400
    assert len(table.videos) == 64
    kv, kt, inverse = table.keyframe_groups()
    assert len(kv) == 50_029
    assert inverse.max() == 50_028
    assert (table.person_id == -1).all() and table.score is None and table.warnings == []
    assert set(np.unique(table.action_id)) <= set(range(1, 15))  # the 14 pose classes
    ref = python_rows(shared_data / POSE)
    for i in (0, 1234, 93_399):
        assert table.video_id[i] == ref[i][0]
        assert table.timestamp[i] == float(ref[i][1])
        np.testing.assert_array_equal(table.boxes[i], [float(v) for v in ref[i][2:6]])
        assert table.action_id[i] == int(ref[i][6])
        assert table.line[i] == i + 1
    assert table.videos.tolist() == sorted({r[0] for r in ref})


@pytest.mark.shared_data
def test_person_id_3_underscore_is_tolerated_with_a_warning(shared_data: Path) -> None:
    table = read_ava_csv(shared_data / HEAD, kind="groundtruth")
    fixed = read_ava_csv(shared_data / HEAD_FIXED, kind="groundtruth")
    assert len(table) == len(fixed) == 342
    assert table.warnings == [
        f"{shared_data / HEAD}:16: person id '3_' is not an integer; kept the row with person id unknown (-1)"
    ]
    assert table.person_id[15] == -1 and fixed.person_id[15] == 3
    same = np.arange(342) != 15
    np.testing.assert_array_equal(table.person_id[same], fixed.person_id[same])
    np.testing.assert_array_equal(table.boxes, fixed.boxes)
    np.testing.assert_array_equal(table.action_id, fixed.action_id)
    assert fixed.warnings == []


@pytest.mark.shared_data
def test_person_id_3_underscore_strict(shared_data: Path) -> None:
    with pytest.raises(AvaFormatError) as info:
        read_ava_csv(shared_data / HEAD, kind="groundtruth", strict_person_ids=True)
    assert info.value.line == 16
    assert "'3_'" in str(info.value) and str(info.value).startswith(f"{shared_data / HEAD}:16:")


@pytest.mark.shared_data
def test_keep_action_ids_matches_reference_count(shared_data: Path) -> None:
    table = read_ava_csv(shared_data / HEAD_FIXED, kind="groundtruth", keep_action_ids={12, 80})
    ref = [r for r in python_rows(shared_data / HEAD_FIXED) if int(r[6]) in (12, 80)]
    assert len(table) == len(ref) > 0
    # line numbers survive filtering
    assert table.line.tolist() == [
        i + 1 for i, r in enumerate(python_rows(shared_data / HEAD_FIXED)) if int(r[6]) in (12, 80)
    ]


@pytest.mark.shared_data
def test_write_reproduces_real_file_byte_for_byte(shared_data: Path, tmp_path: Path) -> None:
    table = read_ava_csv(shared_data / HEAD_FIXED, kind="groundtruth")
    write_ava_csv(tmp_path / "out.csv", table)
    assert (tmp_path / "out.csv").read_bytes() == (shared_data / HEAD_FIXED).read_bytes()


@pytest.mark.shared_data
def test_exclusions_real_files(shared_data: Path) -> None:
    keys = read_exclusions(shared_data / VAL_EXCL)
    assert len(keys) == 37
    assert KeyframeKey("5BDj0ow5hnA", 1038) in keys
    sample = read_exclusions(shared_data / MM_EXCL)
    assert sample == {KeyframeKey("0f39OWEqJ24", 903), KeyframeKey("_-Z6wFjXtGQ", 902)}
    gt = read_ava_csv(shared_data / MM_GT, kind="groundtruth")
    assert len(gt) == 8
    assert set(sample) <= set(gt.keyframe_keys())  # both excluded keyframes have ground truth
    excluded = gt.in_keyframes(sample)
    ref = [(r[0], int(r[1])) for r in python_rows(shared_data / MM_GT)]
    assert excluded.tolist() == [(v, t) in {(k.video_id, k.timestamp) for k in sample} for v, t in ref]


# -- values and round trips -------------------------------------------------------------------------


def test_three_and_four_digit_timestamps_and_fractions(tmp_path: Path) -> None:
    path = write(tmp_path, "v,902,0.1,0.1,0.2,0.2,1,0\nv,0902,0.1,0.1,0.2,0.2,2,0\nv,902.5,0.1,0.1,0.2,0.2,3,0\n")
    table = read_ava_csv(path, kind="groundtruth")
    assert table.timestamp.tolist() == [902.0, 902.0, 902.5]
    kv, kt, inverse = table.keyframe_groups()
    assert kt.tolist() == [902.0, 902.5] and inverse.tolist() == [0, 0, 1]


def test_crlf_bom_and_trailing_blank_lines_are_fine(tmp_path: Path) -> None:
    text = "\ufeff" + GOOD.replace("\n", "\r\n") + "\r\n\r\n"
    table = read_ava_csv(write(tmp_path, text), kind="groundtruth")
    assert len(table) == 3 and table.videos.tolist() == ["vidA", "vidB"]
    assert table.line.tolist() == [1, 2, 3]


def test_ground_truth_round_trip(tmp_path: Path) -> None:
    table = read_ava_csv(write(tmp_path, GOOD), kind="groundtruth")
    write_ava_csv(tmp_path / "out.csv", table)
    assert (tmp_path / "out.csv").read_text() == GOOD.replace("0.1,", "0.100,").replace("0.2,", "0.200,").replace(
        "0.5,", "0.500,").replace("0.6,", "0.600,").replace("0.0,", "0.000,").replace("1.0,", "1.000,")
    again = read_ava_csv(tmp_path / "out.csv", kind="groundtruth")
    for name in ("video_index", "timestamp", "boxes", "action_id", "person_id"):
        np.testing.assert_array_equal(getattr(again, name), getattr(table, name))


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out" / "gt.csv"
    table = read_ava_csv(write(tmp_path, GOOD), kind="groundtruth")
    write_ava_csv(path, table)
    before = path.read_bytes()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(csv_write.pacsv, "write_csv", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_ava_csv(path, table.select([0]))
    assert path.read_bytes() == before and list(path.parent.iterdir()) == [path]  # no temporary left


def test_detection_round_trip_is_exact_for_arbitrary_floats(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 500
    table = AvaTable.from_arrays(
        rng.choice(["-abc_123def", "zzz", "m1"], n),
        np.where(rng.random(n) < 0.5, rng.integers(0, 2000, n), rng.random(n) * 100),
        np.sort(rng.random((n, 2, 2)), axis=1).reshape(n, 4),  # x1 <= x2, y1 <= y2
        action_id=rng.integers(1, 81, n),
        score=np.concatenate([rng.random(n - 2), [1e-9, 0.5]]),
    )
    write_ava_csv(tmp_path / "det.csv", table)
    back = read_ava_csv(tmp_path / "det.csv", kind="detections")
    assert back.video_id.tolist() == table.video_id.tolist()
    for name in ("timestamp", "boxes", "action_id", "score"):
        np.testing.assert_array_equal(getattr(back, name), getattr(table, name))
    assert back.line.tolist() == list(range(1, n + 1))


def test_decimals_rounds_and_seven_column_proposals(tmp_path: Path) -> None:
    table = AvaTable.from_arrays(["v", "v"], [902, 903], [[0.1234567, 0, 0.5, 1], [0, 0, 1, 1]], score=[0.98765432, 0.5])
    write_ava_csv(tmp_path / "p.csv", table, decimals=3)
    assert (tmp_path / "p.csv").read_text() == "v,0902,0.123,0.000,0.500,1.000,0.988\nv,0903,0.000,0.000,1.000,1.000,0.500\n"
    back = read_ava_csv(tmp_path / "p.csv", kind="detections")
    assert back.action_id.tolist() == [-1, -1] and back.score.tolist() == [0.988, 0.5]


def test_many_arrow_blocks_keep_exact_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_fast, "BLOCK_SIZE", 1024)  # ~35 rows per block -> many chunks
    rows = [f"v{i % 7},{900 + i % 50:04d},0.1,0.1,0.2,0.2,{1 + i % 80},{i}" for i in range(2000)]
    rows[1733] = "v4,0910,0.1,0.1,0.2,0.2,0,5"  # action id 0
    path = write(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(AvaFormatError, match="action id 0 is not a positive integer") as info:
        read_ava_csv(path, kind="groundtruth")
    assert info.value.line == 1734
    rows[1733] = "v4,0910,0.1,0.1,0.2,0.2,5,1733"
    table = read_ava_csv(write(tmp_path, "\n".join(rows) + "\n"), kind="groundtruth")
    assert len(table) == 2000 and table.person_id.tolist() == list(range(2000))
    assert table.video_id.tolist() == [f"v{i % 7}" for i in range(2000)]



def read_both_ways(path: Path, kind: str, ncols: int) -> tuple[AvaTable, AvaTable]:
    """The same file through the fast path and through the diagnostic path, both validated."""
    layout = csv_columns.LAYOUTS[(kind, ncols)]
    options = dict(allow_boxless_rows=False, validate_boxes=True, strict_person_ids=False)
    parsed, error = csv_diagnose.parse_lines(path, kind, layout, allow_boxless_rows=False, strict_person_ids=False, unterminated=False)
    assert error is None
    fast = csv_validate.validate(csv_fast.parse_fast(path, layout), path, kind, unterminated=False, **options)
    return fast, csv_validate.validate(parsed, path, kind, unterminated=False, **options)


def assert_same_table(a: AvaTable, b: AvaTable) -> None:
    assert a.videos.tolist() == b.videos.tolist() and (a.score is None) == (b.score is None)
    for name in ("video_index", "timestamp", "boxes", "action_id", "person_id", "score", "line"):
        x, y = getattr(a, name), getattr(b, name)
        if x is not None:
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.boxless == b.boxless and a.warnings == b.warnings


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("groundtruth", GOOD),
        ("groundtruth", GOOD.replace(",0\n", "\n").replace(",1\n", "\n")),  # 7 columns
        ("detections", "b,902,0.1,0.2,0.5,0.6,3,0.25\na,0903.5,0,0,1,1,80,1e-9\n"),
        ("detections", "b,902,0.1,0.2,0.5,0.6,0.25\n"),  # proposals: no action id
    ],
)
def test_fast_and_diagnostic_paths_build_the_same_table(tmp_path: Path, kind: str, text: str) -> None:
    path = write(tmp_path, text)
    assert_same_table(*read_both_ways(path, kind, text.split("\n")[0].count(",") + 1))


def test_split_reader_matches_the_one_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big files are parsed as two halves in two threads; forced on a small file (odd line count,
    CRLF ends, a blank line at the end), the table equals the single reader's and the diagnostic one's."""
    rng = np.random.default_rng(3)
    lines = [f"v{i % 7},{902 + i % 30},{x1:.3f},{y1:.3f},{x1 + 0.2:.3f},{y1 + 0.3:.3f},{1 + i % 80},{s:.4f}"
             for i, (x1, y1, s) in enumerate(rng.random((1001, 3)) * [0.7, 0.6, 1.0])]
    for ending in ("\n", "\r\n"):
        path = write(tmp_path, ending.join(lines) + ending + ending)
        single = read_ava_csv(path, kind="detections")
        monkeypatch.setattr(csv_fast, "SPLIT_BYTES", 0)
        split = read_ava_csv(path, kind="detections")
        monkeypatch.undo()
        assert len(split) == len(single) == 1001
        for name in ("video_index", "timestamp", "boxes", "action_id", "score", "line"):
            np.testing.assert_array_equal(getattr(split, name), getattr(single, name), err_msg=name)
        assert list(split.videos) == list(single.videos)
        assert_same_table(*read_both_ways(path, "detections", 8))


@pytest.mark.parametrize(("margin", "fallback"), [(0.5, True), (1.5, False)])
def test_split_reader_with_too_little_room_falls_back_to_one_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, margin: float, fallback: bool
) -> None:
    """The two parts write into columns sized by a row estimate from the first bytes (times a
    margin); when the rows outnumber that room, the file is read in one piece instead."""
    head = [f"video_{i % 3},0902,0.100000,0.200000,0.500000,0.600000,{1 + i % 80},0.123456" for i in range(40)]
    rest = [f"v{i % 5},903,0,0,1,1,{1 + i % 80},0.5" for i in range(400)]
    path = write(tmp_path, "\n".join(head + rest) + "\n")
    single = read_ava_csv(path, kind="detections")
    parse_serial = csv_fast._parse_serial
    monkeypatch.setattr(csv_fast, "SPLIT_BYTES", 0)
    monkeypatch.setattr(csv_fast, "CAPACITY_MARGIN", margin)
    monkeypatch.setattr(csv_fast, "CAPACITY_SLACK", 0)
    serial = []
    monkeypatch.setattr(csv_fast, "_parse_serial", lambda *a: serial.append(1) or parse_serial(*a))
    split = read_ava_csv(path, kind="detections")
    monkeypatch.undo()
    assert len(split) == 440 and bool(serial) == fallback
    assert_same_table(split, single)


def test_fractional_timestamps_late_in_a_split_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fractional timestamp in the second part of a split file keeps its fraction, and the
    table equals the diagnostic path's."""
    lines = [f"v{i % 3},{902 + i % 9},0.1,0.2,0.5,0.6,{1 + i % 80},0.{i:04d}" for i in range(600)]
    lines[555] = "v1,0903.5,0.1,0.2,0.5,0.6,7,0.5"
    path = write(tmp_path, "\n".join(lines) + "\n")
    monkeypatch.setattr(csv_fast, "SPLIT_BYTES", 0)
    fast, slow = read_both_ways(path, "detections", 8)
    assert fast.timestamp[555] == 903.5 and fast.timestamp.dtype == np.float64
    assert_same_table(fast, slow)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("v1,0903,0.6,0.2,0.5,0.6,7,0.5", "x1 > x2"),
        ("v1,0903,0.1,0.2,0.5,1.6,7,0.5", "outside"),
        ("v1,0903,0.1,0.2,0.5,0.6,7,1.5", "score 1.5"),
        ("v1,0903,0.1,0.2,0.5,0.6,77,0.5", "action id 77 is not in"),
        ("v1,0903,0.1,0.2,0.5,0.6,7,nan", "score nan"),
    ],
)
def test_problems_in_the_second_part_of_a_split_file_name_their_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: str, match: str
) -> None:
    """Validation trusts the bounds the two readers collected only to accept a column: a bad
    value in either part is still found and named with its line."""
    lines = [f"v{i % 3},{902 + i % 9},0.1,0.2,0.5,0.6,{1 + i % 9},0.{i:04d}" for i in range(600)]
    lines[554] = row
    path = write(tmp_path, "\n".join(lines) + "\n")
    monkeypatch.setattr(csv_fast, "SPLIT_BYTES", 0)
    raises_at(path, 555, match, kind="detections", known_action_ids=range(1, 10))


@pytest.mark.shared_data
def test_fast_and_diagnostic_paths_agree_on_a_real_file(shared_data: Path) -> None:
    assert_same_table(*read_both_ways(shared_data / MM_GT, "groundtruth", 8))


# -- malformed input ---------------------------------------------------------------------------------


def raises_at(path: Path, line: int, match: str, **kwargs) -> AvaFormatError:
    kwargs.setdefault("kind", "groundtruth")
    with pytest.raises(AvaFormatError, match=match) as info:
        read_ava_csv(path, **kwargs)
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")
    return info.value


def test_blank_line_in_the_middle(tmp_path: Path) -> None:
    lines = GOOD.splitlines()
    raises_at(write(tmp_path, "\n".join([lines[0], lines[1], "", lines[2]]) + "\n"), 3, "blank line")


def test_wrong_column_count(tmp_path: Path) -> None:
    text = GOOD + "vidC,0904,0.1,0.1,0.2,0.2,5\n" + GOOD
    raises_at(write(tmp_path, text), 4, "expected 8 columns, got 7")


def test_non_numeric_field(tmp_path: Path) -> None:
    text = GOOD + "vidC,0904,abc,0.1,0.2,0.2,5,1\n"
    raises_at(write(tmp_path, text), 4, "x1 'abc' is not a number")


def test_header_row_gets_a_hint(tmp_path: Path) -> None:
    text = "video_id,timestamp,x1,y1,x2,y2,action_id,person_id\n" + GOOD
    err = raises_at(write(tmp_path, text), 1, "timestamp 'timestamp' is not a number")
    assert "no header" in str(err)


def test_inverted_ground_truth_box(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "vidC,0904,0.7,0.1,0.2,0.5,5,1\n")
    raises_at(path, 4, r"box \(0.7, 0.1, 0.2, 0.5\) has x1 > x2")
    assert len(read_ava_csv(path, kind="groundtruth", validate_boxes=False)) == 4


DET_ROW = "v,0902,0.1,0.1,0.2,0.5,5,0.9\n"


def test_detections_are_validated_like_ground_truth(tmp_path: Path) -> None:
    """Inverted boxes and scores outside [0, 1] are refused at their line, naming --lenient;
    zero-area boxes are fine."""
    zero_area = read_ava_csv(write(tmp_path, DET_ROW + "v,0902,0.3,0.3,0.3,0.3,5,0.1\n"), kind="detections")
    assert len(zero_area) == 2
    err = raises_at(write(tmp_path, DET_ROW + "v,0902,0.7,0.1,0.2,0.5,5,0.9\n"), 2, r"box \(0.7, 0.1, 0.2, 0.5\) has x1 > x2", kind="detections")
    assert "--lenient" in str(err)
    raises_at(write(tmp_path, DET_ROW * 2 + "v,0902,0.1,0.1,0.2,0.5,5,1.5\n"), 3, r"score 1.5 is outside \[0, 1\]", kind="detections")
    raises_at(write(tmp_path, "v,0902,0.1,0.1,0.2,0.5,-0.2\n"), 1, r"score -0.2 is outside", kind="detections")  # proposals
    raises_at(write(tmp_path, DET_ROW + "v,0902,-0.1,0.1,0.2,0.5,5,0.9\n"), 2, r"outside \[0, 1\]", kind="detections")


def test_action_ids_are_checked_against_the_known_ids(tmp_path: Path) -> None:
    path = write(tmp_path, DET_ROW + "v,0902,0.1,0.1,0.2,0.5,81,0.9\n" + DET_ROW + "v,0903,0.1,0.1,0.2,0.5,0,0.9\n")
    raises_at(path, 4, "action id 0 is not a positive integer", kind="detections")  # no label map: any id >= 1
    path = write(tmp_path, DET_ROW + "v,0902,0.1,0.1,0.2,0.5,81,0.9\n" + DET_ROW)
    assert len(read_ava_csv(path, kind="detections")) == 3
    err = raises_at(path, 2, "action id 81 is not in the label map", kind="detections", known_action_ids=range(1, 81))
    assert "known ids: 1-80" in str(err) and "--lenient" in str(err)
    lenient = read_ava_csv(path, kind="detections", known_action_ids=range(1, 81), lenient=True)
    assert lenient.line.tolist() == [1, 3] and lenient.action_id.tolist() == [5, 5]
    assert lenient.warnings == [f"{path}:2: action id 81 is not in the label map; 1 such row dropped (--lenient)"]


def test_lenient_reading_warns_once_per_problem_with_a_count(tmp_path: Path) -> None:
    text = (
        DET_ROW
        + "v,0902,-0.1,0.1,1.2,0.5,5,0.9\n"  # 2: outside -> clipped
        + "v,0902,0.7,0.1,0.2,0.5,5,0.9\n"  # 3: inverted -> kept
        + "\n"  # 4: blank -> dropped
        + "v,0903,0.1,0.1,0.2,1.5,5,0.9\n"  # 5: outside -> clipped
        + "v,0903,0.1,0.1,0.2,0.5,5,7.5\n"  # 6: score -> kept
        + "v,0903,0.1,0.1,0.2,0.5,99,0.5\n"  # 7: unknown id -> dropped
    )
    path = write(tmp_path, text)
    with pytest.raises(AvaFormatError, match="outside"):
        read_ava_csv(path, kind="detections", known_action_ids=range(1, 81))
    table = read_ava_csv(path, kind="detections", known_action_ids=range(1, 81), lenient=True)
    assert table.line.tolist() == [1, 2, 3, 5, 6]
    np.testing.assert_array_equal(table.boxes[[1, 3]], [[0, 0.1, 1, 0.5], [0.1, 0.1, 0.2, 1]])
    assert table.boxes[2].tolist() == [0.7, 0.1, 0.2, 0.5] and table.score[4] == 7.5
    assert table.warnings == [  # one per problem, by first line
        f"{path}:2: box (-0.1, 0.1, 1.2, 0.5) is outside [0, 1]; 2 such rows clipped to [0, 1] (--lenient)",
        f"{path}:3: box (0.7, 0.1, 0.2, 0.5) has x1 > x2 or y1 > y2; 1 such row kept (--lenient)",
        f"{path}:4: blank line (or a row of empty fields); 1 such row dropped (--lenient)",
        f"{path}:6: score 7.5 is outside [0, 1]; 1 such row kept as given (--lenient)",
        f"{path}:7: action id 99 is not in the label map; 1 such row dropped (--lenient)",
    ]
    # A line of blanks goes through the diagnostic path and ends the same way.
    spaces = write(tmp_path, DET_ROW + "   \n" + DET_ROW, name="spaces.csv")
    raises_at(spaces, 2, "blank line", kind="detections")
    assert read_ava_csv(spaces, kind="detections", lenient=True).line.tolist() == [1, 3]


def test_pixel_coordinates_are_rejected(tmp_path: Path) -> None:
    err = raises_at(write(tmp_path, GOOD + "vidC,0904,10,20,200,240,5,1\n"), 4, r"outside \[0, 1\]")
    assert "pixel" in str(err)
    raises_at(write(tmp_path, "v,0902,10,20,200,240,5,0.9\n"), 1, r"outside \[0, 1\]", kind="detections")


def test_pixel_coordinate_detections_are_refused_with_the_fix(tmp_path: Path) -> None:
    """A whole file in pixels: refused (lenient too: clipping cannot rescue it), naming
    --pixel-boxes WIDTH HEIGHT, which reads it right."""
    path = write(tmp_path, "v,0902,32,24,160,216,5,0.9\nv,0902,0.1,0.2,0.3,0.4,5,0.8\nv,0903,64,48,320,240,7,0.5\n")
    for lenient in (False, True):
        err = raises_at(path, 1, r"box \(32, 24, 160, 216\) is outside \[0, 1\]; 2 of 3 boxes", kind="detections", lenient=lenient)
        assert "look like pixel coordinates" in str(err) and "--pixel-boxes WIDTH HEIGHT" in str(err)
    pixels = write(tmp_path, "v,0902,32,24,160,216,5,0.9\nv,0903,64,48,320,240,7,0.5\n", name="px.csv")
    table = read_ava_csv(pixels, kind="detections", pixel_boxes=(320, 240))
    np.testing.assert_allclose(table.boxes, [[0.1, 0.1, 0.5, 0.9], [0.2, 0.2, 1.0, 1.0]])
    with pytest.raises(AvaFormatError, match="already inside"):
        read_ava_csv(write(tmp_path, DET_ROW, name="norm.csv"), kind="detections", pixel_boxes=(320, 240))


def test_nan_values(tmp_path: Path) -> None:
    raises_at(write(tmp_path, GOOD + "vidC,0904,0.1,nan,0.2,0.5,5,1\n"), 4, "non-finite")
    raises_at(write(tmp_path, "v,0902,0.1,0.1,0.2,0.5,5,0.9\nv,0902,0.1,0.1,0.2,0.5,5,nan\n"), 2, "score nan", kind="detections")
    raises_at(write(tmp_path, GOOD + "vidC,nan,0.1,0.1,0.2,0.5,5,1\n"), 4, "timestamp nan")


def test_empty_field(tmp_path: Path) -> None:
    raises_at(write(tmp_path, GOOD + "vidC,0904,0.1,0.1,,0.5,5,1\n" + GOOD), 4, "empty x2 field")
    raises_at(write(tmp_path, ",0904,0.1,0.1,0.2,0.5,5,1\n"), 1, "empty video_id")


def test_truncated_file_last_row_cut(tmp_path: Path) -> None:
    err = raises_at(write(tmp_path, GOOD + "vidC,0904,0.1,0.1"), 4, "expected 8 columns, got 4")
    assert "truncated" in str(err)
    err = raises_at(write(tmp_path, GOOD + "vidC,0904,0.1,0.1,0.2,0.5,5,"), 4, "empty person_id field")
    assert "truncated" in str(err)


def test_first_bad_line_wins_across_kinds_of_problem(tmp_path: Path) -> None:
    # a value problem (line 2) before a syntax problem (line 4): line 2 is reported
    text = "v,0902,0.1,0.1,0.2,0.2,1,0\nv,0902,0.9,0.1,0.2,0.2,1,0\nv,0902,0.1,0.1,0.2,0.2,1,0\nv,oops,0.1,0.1,0.2,0.2,1,0\n"
    raises_at(write(tmp_path, text), 2, "x1 > x2")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(AvaFormatError, match="file is empty"):
        read_ava_csv(write(tmp_path, ""), kind="groundtruth")
    with pytest.raises(AvaFormatError, match="file is empty"):
        read_ava_csv(write(tmp_path, "\n\n"), kind="detections")
    with pytest.raises(InputFileError, match="not found"):
        read_ava_csv(tmp_path / "nope.csv", kind="groundtruth")
    with pytest.raises(AvaFormatError, match="expected 7 or 8 columns, got 3") as info:
        read_ava_csv(write(tmp_path, "\na,b,c\n"), kind="groundtruth")
    assert info.value.line == 2


def test_boxless_rows(tmp_path: Path) -> None:
    text = GOOD + "vidC,0904\nvidD,0905,,,,,,\n"
    path = write(tmp_path, text)
    raises_at(path, 4, "expected 8 columns, got 2")
    table = read_ava_csv(path, kind="groundtruth", allow_boxless_rows=True)
    assert len(table) == 3
    assert table.boxless == [("vidC", 904.0), ("vidD", 905.0)]
    raises_at(write(tmp_path, GOOD + "vidD,0905,,,,,,\n", "b.csv"), 4, "no box")
    write_ava_csv(tmp_path / "out.csv", table)
    back = read_ava_csv(tmp_path / "out.csv", kind="groundtruth", allow_boxless_rows=True)
    assert sorted(back.boxless) == sorted(table.boxless) and len(back) == 3


def test_negative_person_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "v,0902,0.1,0.1,0.2,0.2,1,-1\nv,0902,0.1,0.1,0.2,0.2,1,-7\n")
    table = read_ava_csv(path, kind="groundtruth")
    assert table.person_id.tolist() == [-1, -1]
    assert len(table.warnings) == 1 and ":2: person id -7 is negative" in table.warnings[0]
    raises_at(path, 2, "person id -7 is negative", strict_person_ids=True)


def test_bad_person_id_and_a_later_real_error(tmp_path: Path) -> None:
    text = GOOD + "vidC,0904,0.1,0.1,0.2,0.5,5,3_\n" + GOOD + "vidC,0905,0.1,0.1,0.2,0.5,+5,1\n"
    path = write(tmp_path, text)
    raises_at(path, 8, "action_id '\\+5' is not an integer")
    raises_at(path, 4, "person_id '3_' is not an integer", strict_person_ids=True)
    fine = write(tmp_path, GOOD + "vidC,0904,0.1,0.1,0.2,0.5,5,3_\n" + GOOD, "fine.csv")
    table = read_ava_csv(fine, kind="groundtruth")
    assert table.person_id.tolist() == [0, 0, 1, -1, 0, 0, 1]
    assert [w.split(": ")[0] for w in table.warnings] == [f"{fine}:4"]


def test_detections_read_as_ground_truth_is_an_error(tmp_path: Path) -> None:
    err = raises_at(write(tmp_path, "v,0902,0.1,0.1,0.2,0.2,12,0.998\n"), 1, "person_id '0.998' is a fractional number")
    assert "kind='detections'" in str(err)


def test_many_bad_person_ids_are_summarised(tmp_path: Path) -> None:
    rows = [f"v,0902,0.1,0.1,0.2,0.2,1,{i}_" for i in range(30)]
    table = read_ava_csv(write(tmp_path, "\n".join(rows) + "\n"), kind="groundtruth")
    assert (table.person_id == -1).all()
    assert len(table.warnings) == csv_columns.MAX_LISTED_WARNINGS + 1
    assert table.warnings[-1].endswith("10 more rows with unusable person ids kept as -1")


def test_exclusions_errors_and_round_trip(tmp_path: Path) -> None:
    keys = {KeyframeKey("a", 902), KeyframeKey("b", 1798)}
    write_exclusions(tmp_path / "ex.csv", keys)
    assert (tmp_path / "ex.csv").read_text() == "a,0902\nb,1798\n"
    assert read_exclusions(tmp_path / "ex.csv") == keys
    assert read_exclusions(write(tmp_path, "a,902\na,0902\n\n")) == {KeyframeKey("a", 902)}
    for text, line, match in [
        ("a,0902\n\nb,0903\n", 2, "blank line"),
        ("a,0902\nb,0903,1\n", 2, "expected 2 columns"),
        ("a,0902\nb,09x3\n", 2, "not a number"),
        ("a,0902\nb,903.5\n", 2, "whole"),
    ]:
        with pytest.raises(AvaFormatError, match=match) as info:
            read_exclusions(write(tmp_path, text, "bad.csv"))
        assert info.value.line == line
