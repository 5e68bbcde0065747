"""Hand-computed cases pinning each rule of the official AVA frame-mAP protocol (and variants)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.table import AvaTable
from stad_core.errors import StadError
from stad_core.evaluation import evaluate_frame_map
from stad_core.evaluation.ap import precision_recall, voc_average_precision
from stad_core.evaluation.matching import pairwise_iou_official


@dataclass
class LM:
    names: dict[int, str]
    label_types: dict[int, str] = field(default_factory=dict)


LABELS = LM({1: "bend", 5: "fall", 7: "jump"})
FULL = (0.0, 0.0, 1.0, 1.0)
LEFT = (0.0, 0.0, 0.5, 1.0)  # IoU with FULL exactly 0.5
RIGHT = (0.5, 0.0, 1.0, 1.0)  # IoU with FULL exactly 0.5 too
OFF = (0.0, 0.0, 0.1, 0.1)  # IoU with FULL 0.01


def gt_table(rows, boxless=()):
    """rows: (video, t, box, action)."""
    table = AvaTable.from_arrays(
        [r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], float).reshape(-1, 4),
        [r[3] for r in rows],
    )
    table.boxless = list(boxless)
    return table


def det_table(rows):
    """rows: (video, t, box, action, score) in file order."""
    return AvaTable.from_arrays(
        [r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], float).reshape(-1, 4),
        [r[3] for r in rows], score=[r[4] for r in rows],
    )


def ap_of(gt, det, cls=1, **kw):
    return evaluate_frame_map(gt_table(gt), det_table(det), LABELS, **kw).per_class[cls]


def tp_of(gt, det, cls=1, **kw):
    """(true positives, detections kept) of one class -- independent of how ties are ranked."""
    (c,) = [c for c in evaluate_frame_map(gt_table(gt), det_table(det), LABELS, **kw).classes if c.id == cls]
    return c.num_tp, c.num_det


def ap_ranked(flags_in_concat_order, scores, num_gt):
    """AP of a class whose detections, concatenated the official way, have these TP flags and
    scores: ranked with numpy's default argsort reversed, exactly like the official code."""
    perm = np.argsort(np.asarray(scores))[::-1]
    p, r = precision_recall(np.asarray(flags_in_concat_order)[perm], num_gt)
    return voc_average_precision(p, r)


def test_voc_ap_by_hand():
    # ranked T F T, 3 positives: precision 1, 1/2, 2/3; recall 1/3, 1/3, 2/3.
    p, r = precision_recall(np.array([True, False, True]), 3)
    np.testing.assert_allclose(p, [1, 0.5, 2 / 3])
    np.testing.assert_allclose(r, [1 / 3, 1 / 3, 2 / 3])
    assert voc_average_precision(p, r) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    # precision made monotone from the right: F T -> (1/3)*... p=[0, .5] -> area 0.5*0.5
    p, r = precision_recall(np.array([False, True]), 2)
    assert voc_average_precision(p, r) == pytest.approx(0.25)
    assert voc_average_precision(np.zeros(0), np.zeros(0)) == 0.0


def test_iou_no_plus_one_and_exact_half():
    iou = pairwise_iou_official(np.array([LEFT]), np.array([FULL]))
    assert iou[0] == 0.5
    iou = pairwise_iou_official(np.array([[0.1, 0.1, 0.3, 0.2]]), np.array([[0.2, 0.1, 0.4, 0.2]]))
    assert iou[0] == pytest.approx(0.01 / 0.03)


def test_iou_at_threshold_is_a_match():
    assert ap_of([("v", 902, FULL, 1)], [("v", 902, LEFT, 1, 0.9)]) == 1.0
    assert ap_of([("v", 902, FULL, 1)], [("v", 902, LEFT, 1, 0.9)], iou_threshold=0.51) == 0.0


def test_greedy_no_fallback_to_second_best_box():
    gt = [("v", 902, FULL, 1), ("v", 902, (0.0, 0.0, 0.9, 1.0), 1)]
    # det 1 (0.9) best = FULL (IoU 1) -> TP. det 2 (0.8): IoU 0.9 with FULL (best, taken) and
    # 0.9/0.95... with the second box, so it only looks at FULL -> FP although box 2 is free.
    det = [("v", 902, FULL, 1, 0.9), ("v", 902, (0.0, 0.0, 0.95, 1.0), 1, 0.8)]
    iou = pairwise_iou_official(np.array([det[1][2]] * 2), np.array([gt[0][2], gt[1][2]]))
    assert iou[0] > iou[1] >= 0.5
    # ranked T F with 2 positives -> 0.5
    assert ap_of(gt, det) == pytest.approx(0.5)


def test_detections_visit_by_descending_score_not_file_order():
    gt = [("v", 902, FULL, 1)]
    det = [("v", 902, (0.0, 0.0, 0.6, 1.0), 1, 0.3), ("v", 902, FULL, 1, 0.9)]
    # official: 0.9 claims the box first -> ranked T F -> AP 1.
    assert ap_of(gt, det) == 1.0
    # PySlowFast visits in file order: the 0.3 row claims it, the 0.9 row is FP -> F T -> 0.5.
    assert ap_of(gt, det, variant="pyslowfast") == pytest.approx(0.5)


def test_first_box_wins_iou_ties():
    # Two different GT boxes with the same IoU to the detection: the first (file order) is taken,
    # so a second detection on the same spot cannot use the other box.
    gt = [("v", 902, LEFT, 1), ("v", 902, RIGHT, 1)]
    det = [("v", 902, FULL, 1, 0.9), ("v", 902, FULL, 1, 0.8)]
    assert ap_of(gt, det) == pytest.approx(0.5)  # T F, 2 positives


def test_duplicate_ground_truth_rows_are_separate_instances():
    gt = [("v", 902, FULL, 1), ("v", 902, FULL, 1)]
    det = [("v", 902, FULL, 1, 0.9), ("v", 902, FULL, 1, 0.8)]
    # both detections look at the first copy: T F with 2 positives -> 0.5 (the second copy is
    # never matched, but still counts as a positive).
    result = evaluate_frame_map(gt_table(gt), det_table(det), LABELS)
    assert result.per_class[1] == pytest.approx(0.5)
    assert result.num_gt[1] == 2


def test_degenerate_detections_are_neither_tp_nor_fp():
    gt = [("v", 902, FULL, 1)]
    det = [("v", 902, (0.5, 0.2, 0.5, 0.9), 1, 0.99), ("v", 902, (0.3, 0.8, 0.6, 0.2), 1, 0.98), ("v", 902, FULL, 1, 0.5)]
    result = evaluate_frame_map(gt_table(gt), det_table(det), LABELS)
    assert result.per_class[1] == 1.0
    assert result.stats["det_rows_degenerate"] == 2
    # MMAction2 keeps them: two false positives ranked first -> precision 1/3 at full recall.
    assert ap_of(gt, det, variant="mmaction2") == pytest.approx(1 / 3)


def test_class_without_gt_is_nan_and_left_out_class_without_detections_is_zero():
    gt = [("v", 902, FULL, 1), ("v", 902, FULL, 7)]
    det = [("v", 902, FULL, 1, 0.9), ("v", 902, FULL, 5, 0.9)]
    result = evaluate_frame_map(gt_table(gt), det_table(det), LABELS)
    assert result.per_class[1] == 1.0
    assert math.isnan(result.per_class[5])  # detections but no ground truth
    assert result.per_class[7] == 0.0  # ground truth, no detections: counts
    assert result.mAP == pytest.approx(0.5)
    js = result.to_json()
    assert js["per_class"]["5"] is None and js["per_class"]["7"] == 0.0 and js["mAP"] == 0.5
    # MMAction2 only scores classes that have detections: 7 drops out of its mean.
    mm = evaluate_frame_map(gt_table(gt), det_table(det), LABELS, variant="mmaction2")
    assert math.isnan(mm.per_class[7]) and mm.mAP == 1.0


def test_rows_outside_the_label_map_are_dropped():
    gt = [("v", 902, FULL, 1), ("v", 902, FULL, 2)]
    det = [("v", 902, FULL, 2, 0.99), ("v", 902, FULL, 1, 0.5)]
    result = evaluate_frame_map(gt_table(gt), det_table(det), LABELS)
    assert 2 not in result.per_class and result.per_class[1] == 1.0
    assert result.stats["det_rows_not_in_labelmap"] == 1


def test_detections_on_keyframes_without_ground_truth_are_false_positives():
    gt = [("v", 902, FULL, 1)]
    det = [("v", 903, FULL, 1, 0.9), ("w", 902, FULL, 1, 0.8), ("v", 902, FULL, 1, 0.7)]
    assert ap_of(gt, det) == pytest.approx(1 / 3)  # F F T
    # MMAction2 ignores keyframes absent from the ground truth.
    assert ap_of(gt, det, variant="mmaction2") == 1.0


def test_exclusions_remove_ground_truth_and_detections():
    gt = [("v", 902, FULL, 1), ("v", 903, FULL, 1)]
    det = [("v", 903, OFF, 1, 0.9), ("v", 902, FULL, 1, 0.5)]
    assert ap_of(gt, det) == pytest.approx(0.5 * 0.5)  # F T with 2 positives
    result = evaluate_frame_map(gt_table(gt), det_table(det), LABELS, exclusions={KeyframeKey("v", 903)})
    assert result.per_class[1] == 1.0 and result.num_gt[1] == 1
    assert result.stats["det_rows_excluded"] == 1 and result.stats["gt_rows_excluded"] == 1
    # MMAction2 drops the excluded detections but still counts the excluded positive.
    mm = evaluate_frame_map(gt_table(gt), det_table(det), LABELS, exclusions={KeyframeKey("v", 903)}, variant="mmaction2")
    assert mm.per_class[1] == pytest.approx(0.5) and mm.num_gt[1] == 2


def test_2019_keys_on_the_integer_second():
    gt = [("v", 902.0, FULL, 1)]
    det = [("v", 902.7, FULL, 1, 0.9)]  # int(902.7) == 902: same keyframe
    assert ap_of(gt, det) == 1.0
    assert ap_of(gt, det, protocol="2020") == 0.0  # distinct keyframe, not listed -> ignored


def test_top_50_cap_drops_the_lowest_scores_per_keyframe():
    gt = [("v", 902, FULL, 1)]
    fps = [("v", 902, RIGHT, 5, 0.9 - i * 0.001) for i in range(50)]
    assert ap_of(gt, fps + [("v", 902, FULL, 1, 0.1)]) == 0.0  # the TP is the 51st -> dropped
    assert ap_of(gt, fps + [("v", 902, FULL, 1, 0.1)], top_k=None) == 1.0
    assert ap_of(gt, fps[:49] + [("v", 902, FULL, 1, 0.1)]) == 1.0
    # Another keyframe has its own budget.
    assert ap_of(gt, fps + [("v", 903, RIGHT, 5, 0.95), ("v", 902, FULL, 1, 0.1)]) == 0.0
    # The cap counts classes outside the label map? No: those rows are dropped first.
    others = [("v", 902, RIGHT, 2, 0.9) for _ in range(60)]
    assert ap_of(gt, others + [("v", 902, FULL, 1, 0.1)]) == 1.0
    # Degenerate boxes do take a place in the cap (they are dropped after it).
    flat = [("v", 902, (0.2, 0.2, 0.2, 0.4), 5, 0.9) for _ in range(50)]
    assert ap_of(gt, flat + [("v", 902, FULL, 1, 0.1)]) == 0.0


def test_top_50_tie_rule_equal_scores_keep_earlier_rows():
    gt = [("v", 902, FULL, 1)]
    ties = [("v", 902, RIGHT, 5, 0.5) for _ in range(50)]
    # A 51st row with the boundary score does not enter a full heap: the TP is lost...
    assert ap_of(gt, ties + [("v", 902, FULL, 1, 0.5)]) == 0.0
    # ...but read first, it is kept.
    assert ap_of(gt, [("v", 902, FULL, 1, 0.5)] + ties) == 1.0


def test_top_50_tie_rule_displacement_removes_the_smallest_tuple():
    gt = [("v", 902, FULL, 1), ("v", 902, FULL, 7)]
    # Heap full of 0.5 rows: the class-1 row (read first) and 49 class-5 rows; then a 0.9 row
    # arrives and evicts the smallest (score, class, y1, x1, y2, x2): the class-1 row, although
    # it was read earliest.
    rows = [("v", 902, FULL, 1, 0.5)] + [("v", 902, RIGHT, 5, 0.5)] * 49 + [("v", 902, FULL, 7, 0.9)]
    result = evaluate_frame_map(gt_table(gt), det_table(rows), LABELS)
    assert result.per_class[1] == 0.0 and result.per_class[7] == 1.0
    # The same stream tracking class 5 instead: the evicted tuple is the (later) class-1 row,
    # so the class-5 row survives.
    gt5 = [("v", 902, FULL, 5)]
    rows = [("v", 902, FULL, 5, 0.5)] + [("v", 902, OFF, 7, 0.5)] * 48 + [("v", 902, OFF, 1, 0.5)] + [
        ("v", 902, FULL, 7, 0.9)
    ]
    assert ap_of(gt5, rows, cls=5) == 1.0
    # Equal score and class: the box coordinates decide (y1 first): the smaller y1 leaves.
    # (All kept rows tie at 0.5, so count true positives instead of ranking them.)
    rows = [("v", 902, (0.0, 0.0, 1.0, 1.0), 5, 0.5)] + [("v", 902, (0.0, 0.5, 0.1, 1.0), 5, 0.5)] * 49
    assert tp_of(gt5, rows + [("v", 902, RIGHT, 7, 0.9)], cls=5) == (0, 49)
    rows = [("v", 902, (0.0, 0.0, 1.0, 1.0), 5, 0.5)] + [("v", 902, (0.0, 0.0, 0.1, 0.9), 5, 0.5)] * 49
    assert tp_of(gt5, rows + [("v", 902, RIGHT, 7, 0.9)], cls=5) == (1, 49)


def test_equal_scores_rank_like_the_official_argsort():
    # The class list is concatenated keyframe by keyframe in order of first appearance in the
    # detections file, then ranked by numpy's argsort reversed (unstable: ties land where that
    # sort puts them). Either way round, stad must agree with that construction.
    gt = [("v", 902, FULL, 1), ("v", 903, FULL, 1)]
    tp_first = [("v", 902, FULL, 1, 0.5), ("v", 904, FULL, 1, 0.5)]
    assert ap_of(gt, tp_first) == pytest.approx(ap_ranked([True, False], [0.5, 0.5], 2))
    fp_first = [("v", 904, FULL, 1, 0.5), ("v", 902, FULL, 1, 0.5)]
    assert ap_of(gt, fp_first) == pytest.approx(ap_ranked([False, True], [0.5, 0.5], 2))
    # Keyframe order is first appearance, not time: 903's row first puts 903's list first.
    det = [("v", 903, OFF, 1, 0.7), ("v", 902, FULL, 1, 0.5), ("v", 903, FULL, 1, 0.5)]
    expected = ap_ranked([False, True, True], [0.7, 0.5, 0.5], 2)  # 903: 0.7 F, 0.5 T; then 902: 0.5 T
    assert ap_of(gt, det) == pytest.approx(expected)
    # A long tied list goes through numpy's quicksort path (> 16 elements), not insertion sort.
    many = [("v", 902 + (i % 2), FULL if i < 2 else OFF, 1, 0.5) for i in range(40)]
    flags = [True, True] + [False] * 38
    # concatenation: keyframe 902 (even i) then 903 (odd i), file order inside each
    concat = [i for i in range(40) if i % 2 == 0] + [i for i in range(40) if i % 2 == 1]
    assert ap_of(gt, many) == pytest.approx(ap_ranked([flags[i] for i in concat], [0.5] * 40, 2))


def test_protocol_2020_fractional_keys_and_listed_keyframes():
    gt = [("v", 902.5, FULL, 1), ("v", 902.0, FULL, 1)]
    det = [
        ("v", 902.5, FULL, 1, 0.9),  # TP
        ("v", 902.0, FULL, 1, 0.8),  # TP (a different keyframe in 2020)
        ("v", 905.25, FULL, 1, 0.95),  # listed only as "keyframe without boxes": FP
        ("v", 910.0, FULL, 1, 0.99),  # not in the ground-truth file: ignored
    ]
    gt_t = gt_table(gt, boxless=[("v", 905.25)])
    result = evaluate_frame_map(gt_t, det_table(det), LABELS, protocol="2020")
    # ranked F T T with 2 positives: precision 0, 1/2, 2/3 -> area 0.5*2/3 + 0.5*2/3
    assert result.per_class[1] == pytest.approx(2 / 3)
    assert result.stats["det_rows_on_unlisted_keyframes"] == 1
    # Under 2019 both GT rows share keyframe 902 and every detection counts.
    r2019 = evaluate_frame_map(gt_t, det_table(det), LABELS)
    assert r2019.per_class[1] != result.per_class[1]
    with pytest.raises(StadError, match="no exclusions"):
        evaluate_frame_map(gt_t, det_table(det), LABELS, protocol="2020", exclusions={KeyframeKey("v", 902)})


def test_bad_arguments_are_clear_errors():
    gt, det = gt_table([("v", 902, FULL, 1)]), det_table([("v", 902, FULL, 1, 0.9)])
    with pytest.raises(StadError, match="no classes"):
        evaluate_frame_map(gt, det, LM({}))
    with pytest.raises(StadError, match="unknown protocol"):
        evaluate_frame_map(gt, det, LABELS, protocol="2018")
    with pytest.raises(StadError, match="unknown variant"):
        evaluate_frame_map(gt, det, LABELS, variant="detectron")
    with pytest.raises(StadError, match="score"):
        evaluate_frame_map(gt, gt, LABELS)


def test_float32_variant_rounds_scores_and_orders_keyframes_like_the_ground_truth():
    # Scores that differ below float32 resolution tie in MMAction2, whose class lists follow the
    # ground-truth file's keyframe order (903 first here).
    gt = [("v", 903, FULL, 1), ("v", 902, FULL, 1)]
    det = [("v", 902, OFF, 1, 0.5), ("v", 903, FULL, 1, 0.5 + 1e-12)]
    assert ap_of(gt, det) == pytest.approx(0.5)  # official: T (903) then F (902)
    expected = ap_ranked([True, False], np.array([0.5, 0.5], np.float32), 2)  # [903 T, 902 F]
    assert ap_of(gt, det, variant="mmaction2") == pytest.approx(expected)


def test_groups_follow_label_types_or_ava_ranges():
    gt = [("v", 902, FULL, 1), ("v", 902, FULL, 7)]
    det = [("v", 902, FULL, 1, 0.9)]
    typed = LM({1: "a", 5: "b", 7: "c"}, {1: "SHORT_TERM", 5: "RELATIONAL", 7: "SHORT_TERM"})
    result = evaluate_frame_map(gt_table(gt), det_table(det), typed)
    assert result.groups["short_term"] == ([1, 7], 0.5)
    assert result.groups["relational"][0] == [5] and math.isnan(result.groups["relational"][1])
    plain = evaluate_frame_map(gt_table(gt), det_table(det), LM({1: "a", 20: "b", 70: "c"}))
    assert list(plain.groups) == ["pose", "person-object", "person-person"]


def test_empty_inputs():
    gt = gt_table([("v", 902, FULL, 1)])
    result = evaluate_frame_map(gt, AvaTable.empty(with_score=True), LABELS)
    assert result.per_class[1] == 0.0 and math.isnan(result.per_class[5]) and result.mAP == 0.0
    none = evaluate_frame_map(AvaTable.empty(with_score=False), det_table([("v", 902, FULL, 1, 0.9)]), LABELS)
    assert all(math.isnan(v) for v in none.per_class.values()) and math.isnan(none.mAP)
    assert none.to_json()["mAP"] is None
