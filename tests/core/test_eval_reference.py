"""Slow, obviously-correct reference of the AVA frame-mAP protocol, for tests only.

Written from the protocol's rules, row by row with Python lists, dicts and heapq -- nothing
shared with the vectorised implementation it checks.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict


def heap_cap(rows, k):
    """rows: list of (key, score, action, y1, x1, y2, x2) in file order -> kept rows (multiset)."""
    heaps = defaultdict(list)
    for key, score, action, y1, x1, y2, x2 in rows:
        entry = (score, action, y1, x1, y2, x2)
        heap = heaps[key]
        if len(heap) < k:
            heapq.heappush(heap, entry)
        elif score > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return {key: sorted(heap) for key, heap in heaps.items()}


def iou(a, b):
    """a, b: (y1, x1, y2, x2); same arithmetic order as the official code."""
    h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = h * w
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / ((area_a + area_b) - inter)


def voc_ap(tp_flags, num_gt):
    tp = 0
    precision, recall = [], []
    for i, flag in enumerate(tp_flags):
        tp += flag
        precision.append(tp / (i + 1))
        recall.append(tp / num_gt)
    r = [0.0] + recall + [1.0]
    p = [0.0] + precision + [0.0]
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    return sum((r[i] - r[i - 1]) * p[i] for i in range(1, len(r)) if r[i] != r[i - 1])


def reference_frame_map(gt, det, class_ids, excluded=(), *, protocol="2019", boxless=(), top_k=50, thr=0.5):
    """gt: [(vid, t, x1, y1, x2, y2, action)], det: [(..., action, score)] in file order.

    Returns (mAP, {class: AP or nan}). Detection scores must be distinct (no tie rules here).
    """

    def key(v, t):
        return (v, int(t)) if protocol == "2019" else (v, round(float(t), 6))

    classes = set(class_ids)
    excluded = {key(v, t) for v, t in excluded}
    listed = {key(r[0], r[1]) for r in gt} | {key(v, t) for v, t in boxless}
    gt_boxes = defaultdict(list)  # key -> [(action, (y1, x1, y2, x2))] file order
    for v, t, x1, y1, x2, y2, a in gt:
        if a in classes and key(v, t) not in excluded:
            gt_boxes[key(v, t)].append((a, (y1, x1, y2, x2)))
    num_gt = defaultdict(int)
    for entries in gt_boxes.values():
        for a, _ in entries:
            num_gt[a] += 1
    rows = [(key(v, t), s, a, y1, x1, y2, x2) for v, t, x1, y1, x2, y2, a, s in det if a in classes]
    kept = heap_cap(rows, top_k) if top_k else defaultdict(list)
    if not top_k:
        for r in rows:
            kept[r[0]].append(r[1:])
    scored = defaultdict(list)  # class -> [(score, tp)]
    for k, entries in kept.items():
        if k in excluded or (protocol == "2020" and k not in listed):
            continue
        entries = [e for e in entries if e[2] < e[4] and e[3] < e[5]]
        for c in classes:
            dets = sorted((e for e in entries if e[1] == c), key=lambda e: -e[0])
            gts = [b for a, b in gt_boxes.get(k, []) if a == c]
            taken = [False] * len(gts)
            for s, _, y1, x1, y2, x2 in dets:
                flag = False
                if gts:
                    ious = [iou((y1, x1, y2, x2), g) for g in gts]
                    j = max(range(len(gts)), key=lambda i: (ious[i], -i))
                    if ious[j] >= thr and not taken[j]:
                        taken[j] = flag = True
                scored[c].append((s, flag))
    aps = {}
    for c in sorted(classes):
        if num_gt[c] == 0:
            aps[c] = math.nan
            continue
        ranked = sorted(scored[c], key=lambda e: -e[0])
        aps[c] = voc_ap([f for _, f in ranked], num_gt[c])
    finite = [v for v in aps.values() if not math.isnan(v)]
    return (sum(finite) / len(finite) if finite else math.nan), aps


# ---------------------------------------------------------------------------------------------
# Tests against the reference.

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from stad_core.ava.keys import KeyframeKey  # noqa: E402
from stad_core.ava.table import AvaTable  # noqa: E402
from stad_core.evaluation import evaluate_frame_map  # noqa: E402
from stad_core.evaluation.topk import float_order_key32, top_k_per_keyframe  # noqa: E402


class _LM:
    def __init__(self, ids):
        self.names = {i: f"class {i}" for i in ids}
        self.label_types = {}


@pytest.mark.parametrize("contiguous", [False, True])  # True: each keyframe's rows together, as in AVA files
@pytest.mark.parametrize("seed", range(40))
def test_top_k_matches_the_heap_on_tie_heavy_streams(seed, contiguous):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    k = int(rng.choice([1, 2, 5, 17, 50]))
    kf = rng.integers(0, 4, n)
    if contiguous:
        kf = np.sort(kf)
    score = rng.choice([0.1, 0.2, 0.3, 0.4, -0.0, 0.0], n) if seed % 2 else rng.choice([0.25, 0.5], n)
    action = rng.integers(1, 4, n).astype(float)
    box = rng.choice([0.0, 0.5, 1.0], (n, 4))  # tuple columns y1, x1, y2, x2
    rows = [(int(kf[i]), float(score[i]), float(action[i]), *map(float, box[i])) for i in range(n)]
    expected = heap_cap(rows, k)
    mask = top_k_per_keyframe(kf, score, np.column_stack([action, box]), k)
    got = {}
    for i in np.flatnonzero(mask):
        got.setdefault(rows[i][0], []).append(rows[i][1:])
    assert {key: sorted(v) for key, v in got.items()} == expected


def test_top_k_with_float32_collisions_and_large_keyframes():
    rng = np.random.default_rng(7)
    n = 5000
    kf = rng.integers(0, 3, n)
    # Scores that collide after float32 rounding but differ in float64.
    score = 0.5 + rng.integers(0, 4, n) * 1e-12
    tiebreak = np.column_stack([rng.integers(1, 3, n), rng.random((n, 4))])
    rows = [(int(kf[i]), float(score[i]), *map(float, tiebreak[i])) for i in range(n)]
    mask = top_k_per_keyframe(kf, score, tiebreak, 50)
    got = {}
    for i in np.flatnonzero(mask):
        got.setdefault(rows[i][0], []).append(rows[i][1:])
    assert {key: sorted(v) for key, v in got.items()} == heap_cap(rows, 50)


def test_float_order_key32_is_monotone():
    values = np.array([-np.inf, -3.0, -1e-30, -0.0, 0.0, 1e-30, 0.5, 2.0, np.inf])
    keys = float_order_key32(values)
    assert np.all(np.diff(keys.astype(np.int64)) >= 0)
    assert keys[3] == keys[4]  # -0.0 == 0.0


def _random_case(rng, protocol):
    videos = ["a", "b", "c"]
    times = [902.0, 903.0, 904.0, 905.0] if protocol == "2019" else [902.0, 902.5, 903.25, 904.0]
    classes = [1, 2, 3, 4]
    gt, det = [], []
    persons = {}
    for v in videos:
        for t in times:
            p = [tuple(sorted(rng.random(2))) + tuple(sorted(rng.random(2))) for _ in range(int(rng.integers(0, 4)))]
            persons[(v, t)] = [(x[0], x[2], x[1], x[3]) for x in p]  # x1, y1, x2, y2
    for (v, t), boxes in persons.items():
        for b in boxes:
            for c in rng.choice(classes + [9], int(rng.integers(1, 3)), replace=False):
                gt.append((v, t, *b, int(c)))
            if rng.random() < 0.1:  # a duplicate ground-truth row
                gt.append(gt[-1])
    scores = iter(rng.permutation(100000) / 100000.0 + 1e-6)  # distinct scores
    det_times = times + [906.0]
    for _ in range(int(rng.integers(20, 300))):
        v, t = videos[int(rng.integers(0, 3))], det_times[int(rng.integers(0, len(det_times)))]
        near = persons.get((v, t))
        if near and rng.random() < 0.7:
            b = np.array(near[int(rng.integers(0, len(near)))]) + rng.normal(0, 0.05, 4)
        else:
            b = rng.random(4)
        if rng.random() < 0.05:
            b[2] = b[0]  # degenerate
        det.append((v, t, *map(float, b), int(rng.choice(classes + [9])), float(next(scores))))
    return gt, det, classes


def _tables(gt, det):
    g = AvaTable.from_arrays([r[0] for r in gt], [r[1] for r in gt], [r[2:6] for r in gt], [r[6] for r in gt])
    d = AvaTable.from_arrays(
        [r[0] for r in det], [r[1] for r in det], [r[2:6] for r in det], [r[6] for r in det], score=[r[7] for r in det]
    )
    return g, d


@pytest.mark.parametrize("seed", range(60))
def test_full_protocol_matches_the_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    protocol = "2019" if seed % 3 else "2020"
    gt, det, classes = _random_case(rng, protocol)
    top_k = int(rng.choice([3, 10, 50]))
    excluded = [("b", 903.0)] if protocol == "2019" and seed % 2 else []
    boxless = [("c", 906.0)] if protocol == "2020" else []
    g, d = _tables(gt, det)
    g.boxless = list(boxless)
    result = evaluate_frame_map(
        g, d, _LM(classes), exclusions={KeyframeKey(v, int(t)) for v, t in excluded}, protocol=protocol, top_k=top_k
    )
    ref_map, ref_aps = reference_frame_map(gt, det, classes, excluded, protocol=protocol, boxless=boxless, top_k=top_k)
    for c in classes:
        if math.isnan(ref_aps[c]):
            assert math.isnan(result.per_class[c])
        else:
            assert result.per_class[c] == pytest.approx(ref_aps[c], abs=1e-9)
    if math.isnan(ref_map):
        assert math.isnan(result.mAP)
    else:
        assert result.mAP == pytest.approx(ref_map, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Real AVA ground truth scored against perturbed copies of itself.

_POSE_GT = "derenlei_AVA-II/ava_val_v2.1_pose_classes_only.csv"
_LABELS_60 = "activitynet/ava_action_list_v2.1_for_activitynet_2018.pbtxt.txt"
_EXCLUDED = "tubelet-transformer/ava_val_excluded_timestamps_v2.1.csv"


def _perturbed_detections(gt: AvaTable, rng, *, jitter: float, drop: float, extra: float):
    keep = np.flatnonzero(rng.random(len(gt)) >= drop)
    boxes = gt.boxes[keep] + rng.normal(0.0, jitter, (len(keep), 4))
    n_extra = int(extra * len(gt))
    src = rng.integers(0, len(gt), n_extra)
    fp_boxes = np.sort(rng.random((n_extra, 4)).reshape(n_extra, 2, 2), axis=1).reshape(n_extra, 4)[:, [0, 2, 1, 3]]
    vid = np.concatenate([gt.video_index[keep], gt.video_index[src]])
    return AvaTable(
        videos=gt.videos,
        video_index=vid,
        timestamp=np.concatenate([gt.timestamp[keep], gt.timestamp[src]]),
        boxes=np.concatenate([boxes, fp_boxes]),
        action_id=np.concatenate([gt.action_id[keep], rng.choice([1, 3, 11, 12, 14], n_extra).astype(np.int32)]),
        person_id=np.full(len(vid), -1, np.int64),
        score=rng.permutation(len(vid)) / len(vid) + 1e-7,
        line=np.arange(1, len(vid) + 1),
    )


@pytest.mark.shared_data
def test_real_ground_truth_against_itself_and_perturbed_copies(shared_data):
    from stad_core.ava import read_ava_csv, read_exclusions, read_labelmap

    labels = read_labelmap(shared_data / _LABELS_60)
    gt = read_ava_csv(shared_data / _POSE_GT, kind="groundtruth")
    excluded = read_exclusions(shared_data / _EXCLUDED)
    rng = np.random.default_rng(0)
    pose = [c for c in labels.names if c <= 14]

    # Itself with random scores: every pose class with ground truth scores AP 1 (one detection
    # per ground-truth row, IoU 1), other classes have no ground truth -> NaN.
    same = _perturbed_detections(gt, rng, jitter=0.0, drop=0.0, extra=0.0)
    result = evaluate_frame_map(gt, same, labels, exclusions=excluded)
    finite = {c: v for c, v in result.per_class.items() if not math.isnan(v)}
    assert set(finite) <= set(pose) and len(finite) >= 10
    assert result.mAP == pytest.approx(1.0, abs=1e-12)
    assert sum(result.num_gt.values()) == len(gt) - result.stats["gt_rows_excluded"] - result.stats["gt_rows_not_in_labelmap"]

    # Perturbed (jittered boxes, dropped rows, random false positives): exact agreement with the
    # reference on a 6-video slice (the reference is slow).
    det = _perturbed_detections(gt, rng, jitter=0.04, drop=0.2, extra=0.3)
    six = np.isin(gt.video_index, np.arange(6))
    gt6 = gt.select(six)
    det6 = det.select(np.isin(det.video_index, np.arange(6)))
    result = evaluate_frame_map(gt6, det6, labels, exclusions=excluded)
    rows_gt = [(str(gt6.videos[v]), t, *b, int(a)) for v, t, b, a in zip(gt6.video_index, gt6.timestamp, gt6.boxes.tolist(), gt6.action_id)]
    rows_det = [
        (str(det6.videos[v]), t, *b, int(a), s)
        for v, t, b, a, s in zip(det6.video_index, det6.timestamp, det6.boxes.tolist(), det6.action_id, det6.score)
    ]
    ref_map, ref_aps = reference_frame_map(
        rows_gt, rows_det, list(labels.names), [(k.video_id, k.timestamp) for k in excluded]
    )
    assert 0.2 < result.mAP < 0.95
    assert result.mAP == pytest.approx(ref_map, abs=1e-9)
    for c, ap in ref_aps.items():
        assert (math.isnan(ap) and math.isnan(result.per_class[c])) or result.per_class[c] == pytest.approx(ap, abs=1e-9)
