"""Tube linking rules, per-class score expansion, and the synthetic tube export."""

from __future__ import annotations

import numpy as np
import pytest

from stad_core.synth import preset_config
from stad_core.synth.classes import POSE_IDS
from stad_core.tubes import VIDEO_THRESHOLDS, frame_ap, video_ap
from stad_core.tubes.linking import LinkSettings, expand_class_scores, link_all, link_class, soft_suppress
from stad_core.tubes.synth import synth_tubes


def _frames(boxes_by_frame: dict[int, list[list[float]]]) -> dict[int, np.ndarray]:
    return {f: np.array(b, dtype=np.float64) for f, b in boxes_by_frame.items()}


def test_two_actors_become_two_tubes_and_a_miss_ends_a_tube() -> None:
    a = [0, 0, 10, 10, 0.9]
    b = [50, 50, 60, 60, 0.6]
    frames = _frames({f: [a, b] for f in range(1, 21)})
    tubes = link_class(frames, LinkSettings(min_length=5))
    assert [(round(s, 3), len(t)) for s, t in tubes] == [(0.9, 20), (0.6, 20)]
    # A one-frame hole ends a tube under the public rule (end_after=1) ...
    holed = {f: v for f, v in frames.items() if f != 10}
    spans = sorted((int(t[0, 0]), int(t[-1, 0])) for _, t in link_class(holed, LinkSettings(min_length=5)))
    assert spans == [(1, 9), (1, 9), (11, 20), (11, 20)]
    # ... and is bridged with an interpolated box when end_after allows it.
    bridged = link_class(holed, LinkSettings(min_length=5, end_after=2))
    assert sorted(len(t) for _, t in bridged) == [20, 20]
    np.testing.assert_allclose(bridged[0][1][9, 1:5], a[:4])


def test_min_length_min_score_and_trimming() -> None:
    frames = _frames({f: [[0, 0, 10, 10, 0.5 if 3 <= f <= 8 else 0.05]] for f in range(1, 11)})
    assert len(link_class(frames, LinkSettings(min_length=11))) == 0
    assert len(link_class(frames, LinkSettings(min_length=1, min_score=0.5))) == 0
    (score, tube), = link_class(frames, LinkSettings(min_length=1, trim_score=0.3))
    assert (tube[0, 0], tube[-1, 0], score) == (3, 8, pytest.approx(0.5))


def test_a_tube_takes_the_best_scoring_overlapping_candidate() -> None:
    frames = _frames({1: [[0, 0, 10, 10, 0.9]],
                      2: [[0, 0, 10, 10, 0.5], [1, 0, 11, 10, 0.8], [30, 30, 40, 40, 0.99]]})
    tubes = link_class(frames, LinkSettings(min_length=1))
    first = next(t for s, t in tubes if t[0, 0] == 1)
    # the 0.8 box overlaps the suppressed 0.5 one; soft suppression rescales instead of dropping
    np.testing.assert_allclose(first[1, 1:5], [1, 0, 11, 10])
    assert len(tubes) == 3  # the far box and the rescaled 0.5 box start their own tubes


def test_soft_suppression_rescales_overlaps() -> None:
    dets = np.array([[0, 0, 9, 9, 0.9], [0, 0, 9, 9, 0.8], [50, 50, 59, 59, 0.7]], dtype=np.float64)
    out = soft_suppress(dets, 0.6, 10)
    np.testing.assert_allclose(out[:, 4], [0.9, 0.7, 0.0])  # identical box: weight 1 - IoU = 0
    assert len(soft_suppress(dets, 0.6, 2)) == 2


def test_expand_class_scores_rows() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], dtype=np.float64)
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.7, 0.3]])
    rows = expand_class_scores(3, 7, boxes, scores, min_score=0.25)
    assert rows[:, 2].tolist() == [0, 2, 1, 2] and rows[:, 3].tolist() == [0.9, 0.5, 0.7, 0.3]
    assert (rows[:, 0] == 3).all() and (rows[:, 1] == 7).all()
    assert expand_class_scores(0, 1, boxes, scores, top_k=1)[:, 2].tolist() == [0, 1]


def test_synthetic_tubes_are_exact_and_score_one_when_linked_from_perfect_frames() -> None:
    cfg = preset_config("tiny", {"seconds": 12, "keyframe_margin": 1})
    gt = synth_tubes(cfg)
    assert gt.test_videos == [["synth_0001"]] and gt.nframes["synth_0001"] == 120
    pose_labels = {i - 1 for i in POSE_IDS.values()}
    for v, by_label in gt.gttubes.items():
        # exactly one pose per labelled actor per frame: pose-tube rows never overlap per actor
        per_actor_frames: dict[int, list[float]] = {}
        for label in pose_labels & set(by_label):
            for actor, tube in zip(gt.extra["actors"][v][label], by_label[label]):
                per_actor_frames.setdefault(actor, []).extend(tube[:, 0].tolist())
        for frames in per_actor_frames.values():
            assert len(frames) == len(set(frames))
    # Perfect frame detections linked with the public rules give back the tubes: every metric 1.
    rows = []
    for iv, v in enumerate(gt.videos()):
        for label, tubes in gt.gttubes[v].items():
            for t in tubes:
                rows += [[iv, r[0], label, 1.0, *r[1:5]] for r in t]
    rows = np.array(rows)
    assert frame_ap(gt, rows).mean == pytest.approx(1.0)
    linked = link_all(rows, gt.videos(), len(gt.labels), LinkSettings(min_length=2), gt.nframes)
    res = video_ap(gt, linked, thresholds=VIDEO_THRESHOLDS)
    # Linking is per class without identity: two walkers crossing (boxes overlapping >= 0.5) can swap
    # tubes, which costs this tiny set one 'walk' tube; every other class comes back whole.
    assert res[VIDEO_THRESHOLDS[1]].mean > 0.95
    assert sum(ap == 1.0 for ap in res[VIDEO_THRESHOLDS[1]].per_class.values()) >= 5


def test_per_class_score_items_load_as_frame_rows(tmp_path) -> None:
    import pickle

    from stad_core.errors import InputFileError
    from stad_core.tubes.files import load_frame_detections
    from stad_core.tubes.gt import TubeGroundTruth

    gt = TubeGroundTruth(["a", "b"], [[]], [["s/v1", "s/v2"]], {"s/v1": 9, "s/v2": 9}, {}, {})
    items = [{"video": "s/v2", "frame": 4, "boxes": np.array([[0, 0, 5, 5]]), "scores": np.array([[0.2, 0.7]])}]
    path = tmp_path / "items.pkl"
    path.write_bytes(pickle.dumps(items))
    rows = load_frame_detections(path, gt)
    assert rows.tolist() == [[1, 4, 0, 0.2, 0, 0, 5, 5], [1, 4, 1, 0.7, 0, 0, 5, 5]]
    path.write_bytes(pickle.dumps([{**items[0], "video": "s/v3"}]))
    with pytest.raises(InputFileError, match="item 0: missing key or unknown test video"):
        load_frame_detections(path, gt)
