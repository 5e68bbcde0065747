"""Tube metrics with known answers: perfect detections, halved tubes, wrong classes, hand-computed IoUs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from stad_core.errors import InputFileError
from stad_core.tubes import (
    VIDEO_THRESHOLDS,
    TubeGroundTruth,
    frame_ap,
    load_ground_truth,
    save_ground_truth,
    settings_for,
    tube_iou,
    video_ap,
    video_map_summary,
)
from stad_core.tubes.simulate import random_ground_truth


def _tube(frames: range, box: tuple[float, float, float, float]) -> np.ndarray:
    return np.array([[f, *box] for f in frames], dtype=np.float64)


def _gt(tubes: dict[str, dict[int, list[np.ndarray]]], labels: int = 2, nframes: int = 200) -> TubeGroundTruth:
    videos = list(tubes)
    return TubeGroundTruth([f"c{k}" for k in range(labels)], [[]], [videos], {v: nframes for v in videos},
                           {v: (240, 320) for v in videos}, tubes)


def _perfect(gt: TubeGroundTruth) -> tuple[np.ndarray, dict[int, list]]:
    rows, tubes = [], {k: [] for k in range(len(gt.labels))}
    for iv, v in enumerate(gt.videos()):
        for label, ts in gt.gttubes[v].items():
            for t in ts:
                rows += [[iv, r[0], label, 1.0, *r[1:5]] for r in t]
                tubes[label].append((v, 1.0, np.column_stack([t, np.ones(len(t))])))
    return np.array(rows), tubes


@pytest.mark.parametrize("preset", ["multisports", "act"])
def test_perfect_detections_score_one_everywhere(preset: str) -> None:
    gt = random_ground_truth(12, 5, seed=4)
    frame_dets, tubes = _perfect(gt)
    settings = settings_for(preset)
    assert frame_ap(gt, frame_dets, settings=settings).mean == pytest.approx(1.0)
    res = video_ap(gt, tubes, thresholds=VIDEO_THRESHOLDS, settings=settings)
    assert all(r.mean == pytest.approx(1.0) for r in res.values())
    summary = video_map_summary(res)
    assert summary == pytest.approx({"v-mAP@0.2": 1.0, "v-mAP@0.5": 1.0, "v-mAP@0.1:0.9": 1.0})


def test_tube_iou_against_hand_computed_values() -> None:
    a = _tube(range(1, 5), (0, 0, 10, 10))
    b = _tube(range(3, 7), (5, 0, 15, 10))
    # per-frame IoU 50 / 150 = 1/3; MultiSports spans: overlap 4-3 = 1 over 6-1 = 5
    assert tube_iou(a, b) == pytest.approx(1 / 3 * 1 / 5)
    # ACT spans: overlap 2 frames over 6; inclusive pixels: inter 6*11 = 66, union 121+121-66 = 176
    assert tube_iou(a, b, temporal_offset=1) == pytest.approx(1 / 3 * 2 / 6)
    assert tube_iou(a, b, pixel_offset=1, temporal_offset=1) == pytest.approx(66 / 176 * 2 / 6)
    assert tube_iou(a, _tube(range(5, 9), (0, 0, 10, 10))) == 0.0  # disjoint in time
    assert tube_iou(a, a) == pytest.approx(1.0)
    # A frame missing from one tube inside the overlap counts as IoU 0 in the spatial mean.
    holed = np.delete(a, 1, axis=0)
    assert tube_iou(a, holed) == pytest.approx(3 / 4)


def test_tube_cut_in_half_scores_as_the_iou_rule_says() -> None:
    gt_tube = _tube(range(1, 101), (10, 10, 60, 110))
    gt = _gt({"v": {0: [gt_tube]}}, labels=1)
    half = np.column_stack([gt_tube[:50], np.ones(50)])
    dets = {0: [("v", 0.9, half)]}
    thresholds = VIDEO_THRESHOLDS
    ms = video_ap(gt, dets, thresholds=thresholds)
    # MultiSports: temporal IoU (50-1)/(100-1) = 0.4949..: hit up to 0.4, miss from 0.5
    assert tube_iou(gt_tube, half) == pytest.approx(49 / 99)
    assert [ms[t].mean for t in thresholds] == [1.0] * 4 + [0.0] * 5
    # ACT/MOC spans: 50/100 = 0.5 exactly: still a hit at 0.5
    act = video_ap(gt, dets, thresholds=thresholds, settings=settings_for("act"))
    assert [act[t].mean for t in thresholds] == [1.0] * 5 + [0.0] * 4


def test_right_box_with_the_wrong_class_is_a_false_positive() -> None:
    t0 = _tube(range(1, 21), (10, 10, 60, 110))
    t1 = _tube(range(1, 21), (200, 10, 260, 110))
    gt = _gt({"v": {0: [t0], 1: [t1]}})
    tubes = {
        0: [("v", 0.9, np.column_stack([t1, np.ones(20)])),  # class 1's actor, labelled class 0
            ("v", 0.8, np.column_stack([t0, np.ones(20)]))],
        1: [],
    }
    res = video_ap(gt, tubes, thresholds=(0.5,))[0.5]
    # class 0: FP then TP -> precision [0, 1/2] at recall [0, 1] -> AP 0.5; class 1 has no detection
    assert res.per_class == pytest.approx({"c0": 0.5, "c1": 0.0})
    assert res.mean == pytest.approx(0.25)
    frame_rows = [[0, f, 0, 0.9, 200, 10, 260, 110] for f in range(1, 21)]
    frame_rows += [[0, f, 0, 0.8, 10, 10, 60, 110] for f in range(1, 21)]
    f = frame_ap(gt, np.array(frame_rows, dtype=np.float64))
    # 20 FPs ranked above 20 TPs: precision at recall 1 is 20/40
    assert f.per_class == pytest.approx({"c0": 0.5, "c1": 0.0})


def test_a_second_detection_of_the_same_box_is_a_false_positive_and_matching_rules_differ() -> None:
    a = _tube(range(1, 2), (0, 0, 100, 100))
    b = _tube(range(1, 2), (10, 0, 110, 100))
    gt = _gt({"v": {0: [a, b]}}, labels=1)
    rows = np.array([[0, 1, 0, 0.9, 0, 0, 100, 100], [0, 1, 0, 0.8, 0, 0, 100, 100]], dtype=np.float64)
    # MultiSports: the second detection's best match (a) is taken -> FP although b overlaps 0.82
    assert frame_ap(gt, rows).mean == pytest.approx(0.5)
    # ACT removes matched ground truth: the second detection falls back to b -> TP (trapezoid AP = 1)
    assert frame_ap(gt, rows, settings=settings_for("act")).mean == pytest.approx(1.0)


def test_skipped_and_empty_classes() -> None:
    gt = _gt({"v": {0: [_tube(range(1, 5), (0, 0, 10, 10))]}}, labels=3)
    gt.labels[1] = "basketball save"  # officially not evaluated
    rows = np.array([[0, f, 0, 1.0, 0, 0, 10, 10] for f in range(1, 5)], dtype=np.float64)
    res = frame_ap(gt, rows)
    assert res.per_class == {"c0": 1.0}  # c2 has no ground truth; 'basketball save' skipped
    act = frame_ap(gt, rows, settings=settings_for("act"))
    assert act.per_class == {"c0": 1.0, "basketball save": 0.0, "c2": 0.0}


def test_ground_truth_round_trip_and_safe_loading(tmp_path) -> None:
    gt = random_ground_truth(3, 4, seed=1)
    path = tmp_path / "gt.pkl"
    save_ground_truth(gt, path)
    back = load_ground_truth(path)
    assert back.labels == gt.labels and back.test_videos == gt.test_videos and back.nframes == gt.nframes
    v = gt.videos()[0]
    for k, ts in gt.gttubes[v].items():
        for t, u in zip(ts, back.gttubes[v][k]):
            np.testing.assert_allclose(t, u, atol=1e-3)

    class Evil:
        def __reduce__(self):  # would run a command if unpickled naively
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"labels": [], "nframes": {}, "gttubes": Evil()}))
    with pytest.raises(InputFileError, match=r"refusing to load (posix|os)\.system"):
        load_ground_truth(evil)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"labels": ["a"], "nframes": {"v": 10}, "gttubes": {"v": {0: [np.zeros((3, 4))]}}}))
    with pytest.raises(InputFileError, match=r"gttubes\['v'\]\[0\]\[0\] must be an \[n, 5\] array"):
        load_ground_truth(bad)
    missing = tmp_path / "missing.pkl"
    missing.write_bytes(pickle.dumps({"labels": ["a"]}))
    with pytest.raises(InputFileError, match="missing key"):
        load_ground_truth(missing)
    (tmp_path / "trunc.pkl").write_bytes(path.read_bytes()[:50])
    with pytest.raises(InputFileError, match="not a readable pickle"):
        load_ground_truth(tmp_path / "trunc.pkl")


def test_act_preset_suppresses_overlapping_tubes_before_scoring() -> None:
    gt_tube = _tube(range(1, 21), (0, 0, 100, 100))
    gt = _gt({"v": {0: [gt_tube]}}, labels=1)
    loose = np.column_stack([_tube(range(1, 21), (30, 0, 130, 100)), np.ones(20)])  # IoU 70/130 with GT
    tight = np.column_stack([_tube(range(1, 21), (2, 0, 102, 100)), np.ones(20)])
    dets = {0: [("v", 0.9, loose), ("v", 0.8, tight)]}
    act = settings_for("act")
    # loose (IoU 0.538) and tight overlap each other by > 0.3: MOC keeps only the better-scored loose one
    assert video_ap(gt, dets, thresholds=(0.6,), settings=act)[0.6].mean == 0.0
    # without it the tight tube is a TP after one FP: ACT's points (r, p) = (0, 1), (0, 0), (1, 1/2) give
    # trapezoids 0 + 1 * (0 + 1/2) / 2
    no_nms = settings_for("act", tube_nms=None)
    assert video_ap(gt, dets, thresholds=(0.6,), settings=no_nms)[0.6].mean == pytest.approx(0.25)
