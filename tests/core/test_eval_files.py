"""evaluate_files: reading real-format files, both timestamp forms, and clear errors for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from stad_core.ava import AvaFormatError
from stad_core.errors import InputFileError, StadError
from stad_core.evaluation import evaluate_files, markdown_report, write_report

LABELMAP = """item {
  name: "stand"
  id: 12
}
item {
  name: "sit"
  id: 11
}
item {
  name: "talk to"
  id: 79
}
"""
GT = """vidA,0902,0.1,0.1,0.5,0.9,12,0
vidA,0902,0.1,0.1,0.5,0.9,79,0
vidA,0902,0.6,0.1,0.9,0.9,11,1
vidA,0903,0.1,0.1,0.5,0.9,12,0
vidB,1500,0.2,0.2,0.4,0.4,12,3
vidB,1500,0.2,0.2,0.4,0.4,5,3
"""
# Action 5 is in the ground truth but not in the label map (as AVA's 80 classes vs the 60
# evaluated): a known class, not evaluated.
DET = """vidA,902,0.1,0.1,0.5,0.9,12,0.9
vidA,902,0.6,0.1,0.9,0.9,12,0.8
vidA,902,0.6,0.1,0.9,0.9,11,0.7
vidA,903,0.1,0.1,0.5,0.9,12,0.6
vidB,1500,0.2,0.2,0.4,0.4,12,0.5
vidB,1500,0.2,0.2,0.4,0.4,5,0.99
"""


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "labelmap": write(tmp_path, "labels.pbtxt", LABELMAP),
        "groundtruth": write(tmp_path, "gt.csv", GT),
        "detections": write(tmp_path, "det.csv", DET),
        "exclusions": write(tmp_path, "excluded.csv", "vidB,1500\n"),
    }


def test_files_end_to_end_and_both_timestamp_forms(files, tmp_path):
    r = evaluate_files(files["labelmap"], files["groundtruth"], files["detections"])
    # stand (12): ranked 0.9 T, 0.8 F, 0.6 T, 0.5 T with 3 positives -> 1/3 + 1/3*3/4... by hand:
    # precision 1, 1/2, 2/3, 3/4; recall 1/3, 1/3, 2/3, 1 -> 1/3*1 + 1/3*3/4 + 1/3*3/4 = 5/6
    assert r.per_class[12] == pytest.approx(5 / 6)
    assert r.per_class[11] == 1.0
    assert r.per_class[79] == 0.0  # ground truth, no detections
    assert r.mAP == pytest.approx((5 / 6 + 1 + 0) / 3)
    assert r.stats["det_rows_not_in_labelmap"] == 1  # action 5: in the ground truth, not evaluated
    excl = evaluate_files(files["labelmap"], files["groundtruth"], files["detections"], files["exclusions"])
    # without vidB,1500: ranked T F T with 2 positives -> 1/2 + 1/2*2/3
    assert excl.per_class[12] == pytest.approx(0.5 + 0.5 * 2 / 3)
    report = write_report(r, tmp_path / "report")
    data = json.loads(report.json.read_text())
    assert data["per_class"] == {"11": 1.0, "12": pytest.approx(5 / 6), "79": 0.0}
    assert data["protocol"] == "2019" and data["top_k"] == 50
    assert [p.name for p in report.plots] == ["pr_pose.png", "pr_person-person.png"]
    assert all(p.stat().st_size > 1000 for p in report.plots)
    md = markdown_report(r)
    assert "| 12 | stand | 0.8333 | 3 | 4 | 3 |" in md and "## pose" in md


def test_protocol_2020_reads_boxless_rows(tmp_path, files):
    gt = write(tmp_path, "gt2020.csv", "vidA,902.5,0.1,0.1,0.5,0.9,12,0\nvidA,903.0\n")
    det = write(tmp_path, "det2020.csv", "vidA,902.5,0.1,0.1,0.5,0.9,12,0.9\nvidA,903,0.1,0.1,0.5,0.9,12,0.95\nvidA,904,0.1,0.1,0.5,0.9,12,0.99\n")
    r = evaluate_files(files["labelmap"], gt, det, protocol="2020")
    assert r.per_class[12] == pytest.approx(0.5)  # F (903, listed, no boxes) then T; 904 ignored
    with pytest.raises(StadError, match="no exclusions"):
        evaluate_files(files["labelmap"], gt, det, files["exclusions"], protocol="2020")


@pytest.mark.parametrize(
    ("which", "text", "line", "words"),
    [
        ("groundtruth", GT.replace("vidA,0903", "\nvidA,0903"), 4, "blank line"),
        ("groundtruth", GT + "vidB,1501,0.2,0.2,0.4,12,3\n", 7, "column"),
        ("groundtruth", GT.replace("0.6,0.1,0.9", "0.9,0.1,0.6"), 3, "x1 > x2"),
        ("groundtruth", GT.replace("1500,0.2", "1500,zero"), 5, "not a number"),
        ("detections", DET.replace("0.7\n", "high\n"), 3, "score"),
        ("detections", DET.replace("vidA,903,", "vidA,903,0.5,"), 4, "column"),
        ("detections", DET.replace(",12,0.6", ",twelve,0.6"), 4, "action_id"),
    ],
)
def test_malformed_files_name_file_and_line(files, tmp_path, which, text, line, words):
    files[which] = write(tmp_path, f"bad_{which}.csv", text)
    with pytest.raises(InputFileError) as err:
        evaluate_files(files["labelmap"], files["groundtruth"], files["detections"])
    message = str(err.value)
    assert message.startswith(f"{files[which]}:{line}:"), message
    assert words in message


def test_label_map_without_classes_and_missing_files(files, tmp_path):
    empty = write(tmp_path, "empty.pbtxt", "# no classes here\n")
    with pytest.raises(InputFileError) as err:
        evaluate_files(empty, files["groundtruth"], files["detections"])
    assert str(empty) in str(err.value)
    with pytest.raises(InputFileError, match="not found"):
        evaluate_files(files["labelmap"], tmp_path / "nope.csv", files["detections"])
    # A detections file without action ids (person proposals) is refused with a hint.
    proposals = write(tmp_path, "proposals.csv", "vidA,0902,0.1,0.1,0.5,0.9,0.9\n")
    with pytest.raises(InputFileError, match=r"proposals.csv:1: detections have no action id"):
        evaluate_files(files["labelmap"], files["groundtruth"], proposals)


def test_variants_on_files(files):
    mm = evaluate_files(files["labelmap"], files["groundtruth"], files["detections"], variant="mmaction2")
    assert math.isnan(mm.per_class[79])  # no detections: MMAction2 does not score it
    assert mm.per_class[11] == 1.0
    sf = evaluate_files(files["labelmap"], files["groundtruth"], files["detections"], variant="pyslowfast")
    assert sf.per_class[79] == 0.0


def test_unusual_detection_files_are_reported_at_their_line(files, tmp_path):
    """Detections go through the one reader: a clean file takes the fast path, and anything
    unusual is reported with the file and line of the problem."""
    assert evaluate_files(files["labelmap"], files["groundtruth"], files["detections"]).mAP >= 0
    cases = {
        DET.replace("0.7\n", "\n"): (3, "empty score field"),
        DET.replace("0.7\n", "nan\n"): (3, "score nan is not a finite number"),
        "header,t,x1,y1,x2,y2,a,s\n" + DET: (1, "no header row"),
        DET.replace(",12,0.6", ",0,0.6"): (4, "action id 0 is not a positive integer"),
        DET.replace("vidB,1500", " ,1500", 1): (5, "empty video_id"),
    }
    for text, (line, words) in cases.items():
        path = write(tmp_path, "odd.csv", text)
        with pytest.raises(AvaFormatError, match=words) as info:
            evaluate_files(files["labelmap"], files["groundtruth"], path)
        assert info.value.line == line and f"odd.csv:{line}:" in str(info.value)


def pixels(text: str, width: int, height: int) -> str:
    """The detections CSV ``text`` with its boxes in pixels of ``width x height`` frames."""
    rows = []
    for row in text.splitlines():
        f = row.split(",")
        f[2:6] = [f"{float(v) * s:g}" for v, s in zip(f[2:6], (width, height, width, height))]
        rows.append(",".join(f))
    return "\n".join(rows) + "\n"


def test_pixel_coordinate_detections_are_refused(files, tmp_path):
    """A detections file in pixel coordinates used to score mAP 0 without a word: it is refused
    at its first line with the fix, and --pixel-boxes reads it to the normalised file's numbers."""
    path = write(tmp_path, "det_px.csv", pixels(DET, 320, 240))
    for lenient in (False, True):
        with pytest.raises(InputFileError) as err:
            evaluate_files(files["labelmap"], files["groundtruth"], path, lenient=lenient)
        message = str(err.value)
        assert message.startswith(f"{path}:1: box (32, 24, 160, 216) is outside [0, 1]"), message
        assert "look like pixel coordinates" in message and "--pixel-boxes WIDTH HEIGHT" in message
    expected = evaluate_files(files["labelmap"], files["groundtruth"], files["detections"])
    fixed = evaluate_files(files["labelmap"], files["groundtruth"], path, pixel_boxes=(320, 240))
    assert fixed.per_class == expected.per_class and fixed.mAP == expected.mAP


@pytest.mark.parametrize(
    ("text", "line", "words", "warning"),
    [
        (DET.replace(",5,0.99", ",81,0.99"), 6, "action id 81 is not in the label map or the ground truth",
         "1 such row dropped"),
        (DET.replace("0.8\n", "1.8\n"), 2, "score 1.8 is outside [0, 1]", "1 such row kept as given"),
        (DET.replace("0.1,0.1,0.5,0.9,12,0.6", "0.1,0.1,0.5,1.2,12,0.6"), 4, "box (0.1, 0.1, 0.5, 1.2) is outside [0, 1]",
         "1 such row clipped to [0, 1]"),
        (DET.replace("vidA,903", "\nvidA,903"), 4, "blank line", "1 such row dropped"),
    ],
)
def test_bad_detection_rows_are_refused_or_read_leniently(files, tmp_path, text, line, words, warning):
    path = write(tmp_path, "odd.csv", text)
    with pytest.raises(InputFileError) as err:
        evaluate_files(files["labelmap"], files["groundtruth"], path)
    assert str(err.value).startswith(f"{path}:{line}: {words}") and "--lenient" in str(err.value), str(err.value)
    seen: list[str] = []
    result = evaluate_files(files["labelmap"], files["groundtruth"], path, lenient=True, on_warning=seen.append)
    assert len(seen) == 1 and seen[0].startswith(f"{path}:{line}: {words}") and warning in seen[0], seen
    assert result.per_class.keys() == {11, 12, 79}


def test_reader_warnings_reach_the_caller(files, tmp_path):
    gt = write(tmp_path, "gt_junk.csv", GT.replace(",79,0", ",79,3_"))
    with pytest.warns(UserWarning, match=r"gt_junk.csv:2: person id '3_' is not an integer"):
        evaluate_files(files["labelmap"], gt, files["detections"])
