"""Per-class ranking (:mod:`stad_core.evaluation.ranking`), first claims, and the evaluation's
marking of dropped rows, each against a plain re-statement of its rule."""

from __future__ import annotations

import numpy as np
import pytest

from stad_core.ava import AvaTable, KeyframeKey
from stad_core.evaluation import evaluate_frame_map
from stad_core.evaluation.matching import first_claims
from stad_core.evaluation.ranking import ClassRows, ranked_true_positives, visit_order
from stad_core.evaluation.threads import parallel_map


class _LM:
    def __init__(self, ids):
        self.names = {i: f"c{i}" for i in ids}
        self.label_types = {}


def _tie_heavy(rng, n):
    """Scores with many exact ties and pairs that differ only below float32 precision."""
    base = rng.integers(0, 12, n) / 16.0
    nudge = rng.random(n) < 0.3
    return np.where(nudge, base + 1e-12 * rng.integers(1, 4, n), base)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("by_score", [True, False])
def test_visit_order_is_keyframe_then_descending_score_then_file_order(seed, by_score):
    rng = np.random.default_rng(seed)
    n = 500
    score = _tie_heavy(rng, n)
    rank = np.sort(rng.integers(0, 40, n)).astype(np.int32) if seed % 2 else rng.integers(0, 40, n).astype(np.int32)
    rows = np.sort(rng.choice(n, 300, replace=False))
    got = visit_order(rows, score, rank, by_score=by_score)
    keys = (rows, -score[rows], rank[rows]) if by_score else (rows, rank[rows])
    np.testing.assert_array_equal(got, rows[np.lexsort(keys)])


def test_visit_order_with_a_nan_score_puts_it_last_in_its_keyframe():
    score = np.array([0.5, np.nan, 0.9, 0.5])
    rank = np.zeros(4, np.int32)
    np.testing.assert_array_equal(visit_order(np.arange(4), score, rank, by_score=True), [2, 0, 3, 1])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_class_rows_in_file_order_whatever_the_threads(threads):
    rng = np.random.default_rng(threads)
    cls = rng.integers(0, 6, 1001).astype(np.int32)  # 5 classes + "takes no part"
    rows = ClassRows(cls, 5, threads=threads)
    for c in range(6):
        np.testing.assert_array_equal(rows.rows(c), np.flatnonzero(cls == c))
    assert rows.counts.tolist() == np.bincount(cls, minlength=6).tolist()


def test_parallel_map_keeps_the_order():
    assert list(parallel_map(lambda x: x * x, range(50), threads=2)) == [x * x for x in range(50)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("by_score", [True, False])
def test_first_claims_equal_a_greedy_walk_in_visiting_order(seed, by_score):
    rng = np.random.default_rng(seed)
    n = 400
    # Boxes 0..29 belong to (keyframe, class) groups; detections name one box each (or none).
    best = rng.integers(-1, 30, n)
    passes = (best >= 0) & (rng.random(n) < 0.7)
    score = _tie_heavy(rng, n)
    group = np.where(best >= 0, best // 5, -1)  # the box's group: same keyframe and class
    order = np.lexsort((np.arange(n), -score, group)) if by_score else np.lexsort((np.arange(n), group))
    claimed, expected = set(), np.zeros(n, bool)
    for i in order:  # the official greedy pass
        if passes[i] and best[i] not in claimed:
            claimed.add(int(best[i]))
            expected[i] = True
    np.testing.assert_array_equal(first_claims(best, passes, score if by_score else None), expected)


def test_ranked_true_positives_follow_the_official_argsort():
    rng = np.random.default_rng(5)
    n = 300
    score = _tie_heavy(rng, n)
    rank = np.sort(rng.integers(0, 20, n)).astype(np.int32)
    tp = rng.random(n) < 0.4
    rows = np.arange(n)
    seg = rows[np.lexsort((rows, -score, rank))]
    expected = tp[seg[np.argsort(score[seg])[::-1]]]
    np.testing.assert_array_equal(ranked_true_positives(rows, score, rank, tp, by_score=True), expected)


@pytest.mark.parametrize("variant", ["official", "mmaction2", "pyslowfast"])
def test_marking_dropped_rows_equals_removing_them_first(variant):
    """Without a top-k cap, excluded and degenerate detections are marked rather than gathered
    out; the APs equal those of the same file with those rows removed beforehand."""
    rng = np.random.default_rng(11)
    videos, times, classes = ["a", "b"], [902.0, 903.0, 904.0], [1, 2, 3]
    gt_rows, det_rows = [], []
    for v in videos:
        for t in times:
            for _ in range(3):
                x, y = rng.random(2) * 0.5
                box = [x, y, x + 0.3, y + 0.4]
                gt_rows.append((v, t, box, int(rng.choice(classes))))
                for c in classes:
                    jitter = rng.normal(0, 0.05, 4)
                    det_rows.append((v, t, list(np.asarray(box) + jitter), c, float(rng.integers(0, 8) / 8)))
    det_rows[4] = (det_rows[4][0], det_rows[4][1], [0.5, 0.5, 0.5, 0.9], det_rows[4][3], 0.75)  # degenerate
    excluded = {KeyframeKey("b", 903)}

    def table(rows, score):
        return AvaTable.from_arrays(
            [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
            score=[r[4] for r in rows] if score else None,
        )

    gt = table(gt_rows, False)
    marked = evaluate_frame_map(gt, table(det_rows, True), _LM(classes), exclusions=excluded, variant=variant, top_k=None)
    assert marked.stats["det_rows_excluded"] > 0
    drop_degenerate = variant != "mmaction2"
    kept = [
        r for r in det_rows
        if (r[0], int(r[1])) not in excluded and not (drop_degenerate and not (r[2][0] < r[2][2] and r[2][1] < r[2][3]))
    ]
    removed = evaluate_frame_map(gt, table(kept, True), _LM(classes), exclusions=excluded, variant=variant, top_k=None)
    assert marked.per_class == removed.per_class and marked.mAP == removed.mAP
    assert [c.num_det for c in marked.classes] == [c.num_det for c in removed.classes]
    assert marked.stats["det_rows_evaluated"] == removed.stats["det_rows_evaluated"]


@pytest.mark.parametrize("contiguous", [True, False])
def test_top_k_given_the_runs_keeps_the_same_rows(contiguous):
    from stad_core.evaluation.topk import top_k_per_keyframe

    rng = np.random.default_rng(4)
    kf = np.repeat(rng.permutation(30) if not contiguous else np.arange(30), rng.integers(1, 90, 30))
    if not contiguous:
        kf = np.concatenate([kf, kf[:200]])  # keyframes that come back later in the file
    n = len(kf)
    score = _tie_heavy(rng, n)
    tiebreak = np.column_stack([rng.integers(1, 3, n), rng.random((n, 4))])
    starts = np.flatnonzero(np.r_[True, kf[1:] != kf[:-1]])
    runs = (kf[starts], np.diff(np.r_[starts, n]))
    np.testing.assert_array_equal(
        top_k_per_keyframe(kf, score, tiebreak, 7, runs=runs), top_k_per_keyframe(kf, score, tiebreak, 7)
    )
