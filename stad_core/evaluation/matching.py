"""Greedy detection-to-ground-truth matching, the AVA/Pascal way, for all keyframes at once.

Within one keyframe and class, detections are visited in a fixed order (by descending score, equal
scores in file order, or file order for PySlowFast); each looks only at its highest-IoU ground-truth
box (the first one on ties) and is a true positive iff that IoU is >= the threshold and that box is
still unclaimed.
There is no fall-back to the second-best box. A detection's best box does not depend on what
happened before it, so the whole pass reduces to: a detection is a true positive iff its IoU
passes and it is the *first* passing detection (in visiting order) that names its box.

IoU is computed in blocks: detections are bucketed by how many ground-truth boxes share their
keyframe and class, and each bucket is one padded ``[detections, boxes]`` matrix of bounded size.
"""

from __future__ import annotations

import numpy as np

#: Upper bound on the elements of one padded IoU block (about 80 MB of float64 temporaries).
BLOCK_ELEMENTS = 1 << 21


def pairwise_iou_official(det: np.ndarray, gt: np.ndarray, *, float32: bool = False) -> np.ndarray:
    """IoU between matching rows of ``det`` and ``gt`` with the official arithmetic.

    Args:
        det: ``[..., 4]`` float boxes ``x1, y1, x2, y2``.
        gt: ``[..., 4]`` float boxes broadcastable against ``det``.
        float32: reproduce MMAction2's mixed precision (float32 inputs and areas, intersection
            sides promoted to float64 before the product, float64 division).

    Returns:
        ``[...]`` float64 ``inter / (area_det + area_gt - inter)``; NaN where the union is 0.

    The official code works on ``[y1, x1, y2, x2]`` and multiplies height by width; the products
    and sums used here are the same operations on the same operands, so results are bit-identical
    (a threshold test at exactly 0.5 agrees).
    """
    if float32:
        det = det.astype(np.float32)
        gt = gt.astype(np.float32)
    h = np.minimum(det[..., 3], gt[..., 3]) - np.maximum(det[..., 1], gt[..., 1])
    w = np.minimum(det[..., 2], gt[..., 2]) - np.maximum(det[..., 0], gt[..., 0])
    inter = np.maximum(0.0, h.astype(np.float64)) * np.maximum(0.0, w.astype(np.float64))
    area_det = (det[..., 3] - det[..., 1]) * (det[..., 2] - det[..., 0])
    area_gt = (gt[..., 3] - gt[..., 1]) * (gt[..., 2] - gt[..., 0])
    union = (area_det + area_gt) - inter  # the sum stays float32 in float32 mode, like the original
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def best_ground_truth(
    det_boxes: np.ndarray,
    gt_start: np.ndarray,
    gt_count: np.ndarray,
    gt_boxes: np.ndarray,
    *,
    float32: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Each detection's highest-IoU ground-truth box among its candidates (first on ties).

    Args:
        det_boxes: ``[D, 4]`` detection boxes.
        gt_start: ``[D]`` index of the first candidate box in ``gt_boxes``.
        gt_count: ``[D]`` number of candidates (>= 1); candidates are ``gt_start + 0..count-1``.
        gt_boxes: ``[G, 4]`` ground-truth boxes grouped so each detection's candidates are
            contiguous, in the order that decides ties.
        float32: see :func:`pairwise_iou_official`.

    Returns:
        best: ``[D]`` int64 index into ``gt_boxes`` of the chosen box,
        iou: ``[D]`` float64 its IoU (NaN compares as the maximum, as ``np.argmax`` does).
    """
    d = len(det_boxes)
    best = np.zeros(d, dtype=np.int64)
    best_iou = np.zeros(d, dtype=np.float64)
    if d == 0:
        return best, best_iou
    # Buckets of detections whose candidate count is in (2^(j-1), 2^j]: padding wastes < 2x.
    bucket = np.ceil(np.log2(gt_count)).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    edges = np.flatnonzero(np.r_[True, bucket[order][1:] != bucket[order][:-1], True])
    for lo, hi in zip(edges[:-1], edges[1:]):
        rows_all = order[lo:hi]
        width = int(gt_count[rows_all].max())
        step = max(1, BLOCK_ELEMENTS // width)
        for s in range(0, len(rows_all), step):
            rows = rows_all[s : s + step]
            offsets = np.arange(width)
            valid = offsets[None, :] < gt_count[rows][:, None]
            cand = np.where(valid, gt_start[rows][:, None] + offsets[None, :], 0)
            iou = pairwise_iou_official(det_boxes[rows][:, None, :], gt_boxes[cand], float32=float32)
            iou[~valid] = -np.inf
            arg = np.argmax(iou, axis=1)
            best[rows] = cand[np.arange(len(rows)), arg]
            best_iou[rows] = iou[np.arange(len(rows)), arg]
    return best, best_iou


def first_claims(best: np.ndarray, passes: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    """True positives of the greedy pass.

    Detections that name the same box share its keyframe and class, so of those that pass, the
    first one visited claims it: the highest ``score`` (equal scores: the first in file order),
    or the first in file order when ``score`` is None (PySlowFast visits in file order).

    Args:
        best: ``[D]`` chosen ground-truth index per detection (globally unique per box).
        passes: ``[D]`` bool, IoU with that box >= threshold.
        score: ``[D]`` the scores the visiting order sorts by, or None.

    Returns:
        ``[D]`` bool: passes, and no earlier detection (in visiting order) claimed the same box.
    """
    tp = np.zeros(len(best), dtype=bool)
    visiting = np.flatnonzero(passes)  # file order
    if len(visiting) == 0:
        return tp
    if score is None:
        # np.unique sorts stably when return_index is asked for: the index is the first occurrence.
        _, first = np.unique(best[visiting], return_index=True)
        tp[visiting[first]] = True
        return tp
    # By box, then descending score (NaN last, as a descending sort puts it), then file order.
    order = np.lexsort((visiting, -score[visiting], best[visiting]))
    boxes = best[visiting[order]]
    starts = np.r_[True, boxes[1:] != boxes[:-1]]
    tp[visiting[order[starts]]] = True
    return tp
