"""IoU tracker: ids stable through a crossing of two synthetic actors, gaps, ordering, errors."""

from __future__ import annotations

import numpy as np
import pytest

from stad_core.synth.planner import SHIRTS
from stad_core.synth.render import render_background, render_frame
from stad_core.synth.world import Actor, Identity, Segment, World
from stad_core.tracking import assign_tracks


def _crossing_world(dy: float = 4.0) -> World:
    """Two actors walking towards each other on nearly the same floor line; they overlap mid-video."""
    a = Actor(0, Identity(SHIRTS[0], (30, 30, 90), (210, 30, 30), (235, 195, 160)))
    b = Actor(1, Identity(SHIRTS[1], (20, 20, 20), (245, 245, 245), (200, 150, 110)))
    a.add(Segment(0.0, 6.0, "walk", 20.0, 100.0, 140.0, 100.0, 1))
    b.add(Segment(0.0, 6.0, "walk", 140.0, 100.0 - dy, 20.0, 100.0 - dy, -1))
    return World("cross", 6.0, [a, b], [], [], [], None, [], background_seed=3)


def _rendered_boxes(world: World, fps: int = 10) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per frame the rendered actor boxes (pixels) and their true actor ids, in a shuffled order."""
    bg = render_background(world.background_seed, 160, 128)
    rng = np.random.default_rng(0)
    boxes, truth = [], []
    for i in range(int(world.seconds * fps)):
        _, views = render_frame(world, bg, i / fps, track=True)
        order = rng.permutation(len(views))
        boxes.append(np.array([views[k].box for k in order]) * [160, 128, 160, 128])
        truth.append(np.array([views[k].actor_id for k in order]))
    return boxes, truth


def test_ids_stable_through_a_crossing() -> None:
    boxes, truth = _rendered_boxes(_crossing_world())
    # The two boxes really do overlap heavily at the crossing (else the test would prove nothing).
    from stad_core.boxes import box_iou

    peak = max(float(box_iou(b[:1], b[1:2])[0, 0]) for b in boxes)
    assert peak > 0.8
    ids = assign_tracks(boxes)
    pairs = {(int(i), int(a)) for step_ids, step_truth in zip(ids, truth) for i, a in zip(step_ids, step_truth)}
    assert len(pairs) == 2  # exactly two tracks, each always the same actor
    assert {i for i, _ in pairs} == {0, 1}


def test_greedy_matching_also_keeps_ids_through_the_crossing() -> None:
    boxes, truth = _rendered_boxes(_crossing_world(dy=0.0))
    ids = assign_tracks(boxes, method="greedy")
    pairs = {(int(i), int(a)) for step_ids, step_truth in zip(ids, truth) for i, a in zip(step_ids, step_truth)}
    assert len(pairs) == 2


def test_gap_bridging_and_new_ids_in_order_of_appearance() -> None:
    box = np.array([[10.0, 10.0, 20.0, 20.0]])
    other = np.array([[50.0, 50.0, 60.0, 60.0]])
    empty = np.zeros((0, 4))
    steps = [box, np.concatenate([box, other]), empty, box, empty, empty, box]
    ids = assign_tracks(steps, max_gap=2)  # continued up to 2 steps after the last match
    assert [x.tolist() for x in ids] == [[0], [0, 1], [], [0], [], [], [2]]
    assert all(x.dtype == np.int64 for x in ids)
    # A larger gap allowance keeps the id through the 2-step hole.
    assert assign_tracks(steps, max_gap=3)[-1].tolist() == [0]


def test_low_scores_do_not_open_tracks_and_errors_are_clear() -> None:
    steps = [np.array([[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]])] * 2
    scores = [np.array([0.9, 0.1])] * 2
    ids = assign_tracks(steps, scores, min_score=0.5)
    assert [x.tolist() for x in ids] == [[0, -1], [0, -1]]
    with pytest.raises(ValueError, match=r"boxes\[0\] must have shape"):
        assign_tracks([np.zeros((2, 3))])
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        assign_tracks(steps, [np.array([0.5])] * 2)


def test_motion_prediction_is_what_keeps_ids_when_the_boxes_coincide() -> None:
    boxes, truth = _rendered_boxes(_crossing_world(dy=0.0))
    ids = assign_tracks(boxes, motion=False)  # last-box matching swaps or splits ids at the crossing
    pairs = {(int(i), int(a)) for step_ids, step_truth in zip(ids, truth) for i, a in zip(step_ids, step_truth)}
    assert len(pairs) > 2


def test_appearance_features_keep_ids_where_boxes_alone_cannot() -> None:
    # Two people one behind the other: the same box up to jitter; detections in random order.
    a = b = np.array([0.0, 0.0, 10.0, 20.0])
    fa, fb = np.array([1.0, 0.0, 0.2]), np.array([0.0, 1.0, 0.2])
    rng = np.random.default_rng(1)
    boxes, feats, truth = [], [], []
    for _ in range(12):
        order = rng.permutation(2)
        boxes.append(np.stack([a, b])[order] + rng.normal(0, 0.5, (2, 4)))
        feats.append(np.stack([fa, fb])[order])
        truth.append(order)

    def pairs(ids: list[np.ndarray]) -> int:
        return len({(int(i), int(t)) for x, y in zip(ids, truth) for i, t in zip(x, y)})

    assert pairs(assign_tracks(boxes, motion=False)) > 2  # boxes alone: ids follow the jitter
    assert pairs(assign_tracks(boxes, features=feats, motion=False)) == 2
    with pytest.raises(ValueError, match="1 feature arrays for 12 box arrays"):
        assign_tracks(boxes, features=feats[:1])
