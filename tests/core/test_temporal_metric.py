"""Charades_v1_localize and the temporal annotation readers, against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stad_core.errors import InputFileError, StadError
from stad_core.temporal.annotations import (
    Activity,
    TemporalVideo,
    read_charades_classes,
    read_charades_csv,
    read_class_list,
    read_interval_files,
    write_charades_csv,
)
from stad_core.temporal.metric import (
    charades_localize,
    frame_map,
    localize_groundtruth,
    localize_times,
    sample_at_localize_times,
    thumos_ap,
)
from stad_core.temporal.submission import format_submission, read_submission


def test_thumos_ap_by_hand() -> None:
    assert thumos_ap(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0], bool)) == pytest.approx((1 + 2 / 3) / 2)
    # Ties keep the input order (MATLAB's stable sort): the negative listed first ranks first.
    assert thumos_ap(np.array([0.5, 0.5]), np.array([0, 1], bool)) == pytest.approx(0.5)
    assert thumos_ap(np.array([0.5, 0.5]), np.array([1, 0], bool)) == pytest.approx(1.0)
    assert np.isnan(thumos_ap(np.array([0.3, 0.2]), np.array([0, 0], bool)))


def test_localize_times_are_the_scripts() -> None:
    np.testing.assert_allclose(localize_times(25.0), np.arange(25.0))  # (j-1)/25*length, j=1..25
    np.testing.assert_allclose(localize_times(50.0)[[0, 5, 10, 24]], [0.0, 10.0, 20.0, 48.0])


def _videos() -> list[TemporalVideo]:
    return [
        TemporalVideo("A", 25.0, (Activity(0, 0.0, 2.0),)),  # t=0,1,2 -> frames 1..3 (end inclusive)
        TemporalVideo("B", 50.0, (Activity(1, 10.0, 20.0),)),  # t=10..20 step 2 -> frames 6..11
        TemporalVideo("C", 30.0, ()),  # no positives at all
    ]


def _predictions() -> dict[tuple[str, int], np.ndarray]:
    preds = {}
    for j in range(1, 26):
        preds[("A", j)] = np.array([1.0 if j <= 3 else 0.0, 0.9, 0.2])
        preds[("C", j)] = np.array([0.0, 0.95, 0.2])  # confident negatives of class 1
        if j != 11:  # B frame 11 (a positive of class 1) is missing: it scores -inf
            preds[("B", j)] = np.array([0.5, 0.9 if 6 <= j <= 10 else 0.1, 0.2])
    preds[("Z", 1)] = np.array([9.0, 9.0, 9.0])  # a video not in the ground truth is ignored
    return preds


def test_groundtruth_frames() -> None:
    keys, labels = localize_groundtruth(_videos(), 3)
    assert len(keys) == 75 and keys[0] == ("A", 1) and keys[-1] == ("C", 25)
    assert labels[:, 0].nonzero()[0].tolist() == [0, 1, 2]
    assert labels[:, 1].nonzero()[0].tolist() == [25 + j - 1 for j in range(6, 12)]
    assert not labels[:, 2].any() and not labels[50:].any()


def test_charades_localize_by_hand() -> None:
    result = charades_localize(_videos(), _predictions(), 3)
    assert result.ap[0] == pytest.approx(1.0)
    # class 1 ranking: C's 25 negatives (0.95), A's 25 negatives (0.9, listed before B), B frames 6..10
    # (0.9: ranks 51..55), B's 19 other frames (0.1), B frame 11 (-inf) last: rank 75.
    ap1 = (1 / 51 + 2 / 52 + 3 / 53 + 4 / 54 + 5 / 55 + 6 / 75) / 6
    assert result.ap[1] == pytest.approx(ap1)
    assert np.isnan(result.ap[2])  # a class with no positives is left out of the mean
    assert result.map == pytest.approx((1.0 + ap1) / 2)
    assert result.wap == pytest.approx((3 * 1.0 + 6 * ap1) / 9)
    assert result.positives.tolist() == [3, 6, 0] and result.classes_scored == 2


def test_no_positive_anywhere_is_an_error() -> None:
    with pytest.raises(StadError, match="no class has a positive"):
        frame_map(np.zeros((4, 2)), np.zeros((4, 2), bool))


def test_submission_round_trip_and_zero_indexed_shift(tmp_path: Path) -> None:
    preds = _predictions()
    path = tmp_path / "sub.txt"
    path.write_text(format_submission((v, j, s) for (v, j), s in preds.items()))
    back = read_submission(path, 3)
    assert not back.shifted_from_zero and set(back.predictions) == set(preds)
    assert charades_localize(_videos(), back.predictions, 3).map == pytest.approx(
        charades_localize(_videos(), preds, 3).map)
    zero = tmp_path / "zero.txt"
    zero.write_text(format_submission((v, j - 1, s) for (v, j), s in preds.items()))
    shifted = read_submission(zero, 3)
    assert shifted.shifted_from_zero and set(shifted.predictions) == set(preds)
    bad = tmp_path / "bad.txt"
    bad.write_text("A 1 0.1 0.2 0.3\nA 2 0.1 0.2\n")
    with pytest.raises(InputFileError, match=r"bad.txt:2: 2 scores, expected 3"):
        read_submission(bad, 3)
    dup = tmp_path / "dup.txt"
    dup.write_text("A 1 0.1 0.2 0.3\nA 1 0.1 0.2 0.3\n")
    with pytest.raises(InputFileError, match=r"dup.txt:2: .*first at line 1"):
        read_submission(dup, 3)


def test_step_scores_to_localize_frames() -> None:
    steps = np.arange(10.0)[:, None] * np.ones((1, 2))  # 10 steps of 1 s, video of 10 s
    got = sample_at_localize_times(steps, 10.0, 1.0)
    assert got.shape == (25, 2) and got[0, 0] == 0 and got[-1, 0] == 9  # t=9.6 -> step 9


def test_charades_csv_and_classes(tmp_path: Path) -> None:
    classes = tmp_path / "classes.txt"
    classes.write_text("c000 Holding some clothes\nc001 Putting clothes somewhere\n")
    cl = read_charades_classes(classes)
    assert cl.ids == ("c000", "c001") and cl.names[1] == "Putting clothes somewhere"
    csv = tmp_path / "train.csv"
    csv.write_text('id,subject,descriptions,actions,length\n'
                   'AB12C,s1,"A person, holding",c000 0.00 3.10;c001 2.0 5.5,12.3\n'
                   'XY9Z,s2,nothing,,8.0\n')
    videos = read_charades_csv(csv, cl)
    assert videos[0] == TemporalVideo("AB12C", 12.3, (Activity(0, 0.0, 3.1), Activity(1, 2.0, 5.5)))
    assert videos[1].activities == ()
    csv.write_text('id,actions,length\nAB12C,c000 0.00 3.10,12.3\n"Q1",c007 1 2,5\n')
    with pytest.raises(InputFileError, match=r"train.csv:3: unknown class id c007"):
        read_charades_csv(csv, cl)
    csv.write_text('id,actions,length\nAB12C,c000 0.00,12.3\n')
    with pytest.raises(InputFileError, match=r"train.csv:2: action 'c000 0.00' is not 'cNNN start end'"):
        read_charades_csv(csv, cl)
    csv.write_text('id,actions,length\nAB12C,,abc\n')
    with pytest.raises(InputFileError, match=r"train.csv:2: length 'abc'"):
        read_charades_csv(csv, cl)
    out = tmp_path / "out.csv"
    write_charades_csv(out, videos)
    assert read_charades_csv(out, cl) == videos


def test_multithumos_interval_files(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("1 Run\n2 Jump\n3 Sit\n")
    cl = read_class_list(tmp_path / "classes.txt")
    folder = tmp_path / "annotations"
    folder.mkdir()
    (folder / "Run.txt").write_text("v1 1.0 2.5\nv2 0 1\n")
    (folder / "Jump.txt").write_text("v1 3 4\n")
    videos = read_interval_files(folder, cl, {"v1": 10.0, "v2": 5.0})
    assert videos[0].activities == (Activity(0, 1.0, 2.5), Activity(1, 3.0, 4.0)) and videos[1].length == 5.0
    (folder / "Jump.txt").write_text("v1 3 4\nv9 1 2\n")
    with pytest.raises(InputFileError, match=r"Jump.txt:2: unknown video 'v9'"):
        read_interval_files(folder, cl, {"v1": 10.0, "v2": 5.0})
