"""Person-detection average precision at an IoU threshold (the AP@0.5 papers quote for AVA).

Detections of all keyframes are ranked by score; each is a true positive when its best-overlapping
ground-truth box of the same keyframe has IoU >= the threshold and was not claimed by a
higher-scoring detection (the PASCAL VOC / AVA evaluation rule: no fall-back to the next-best box). AP is the area under the precision-recall curve
after making precision monotonically non-increasing (all points, no 11-point sampling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.proposals import KeyframeDetections
from stad_core.boxes import box_iou


@dataclass(frozen=True)
class PersonAP:
    """AP (0-1), recall at the last detection, and the counts behind them."""

    ap: float
    recall: float
    num_groundtruth: int
    num_detections: int
    iou_threshold: float

    def __str__(self) -> str:
        return (f"person AP@{self.iou_threshold:g} = {100 * self.ap:.1f} (recall {100 * self.recall:.1f}; "
                f"{self.num_detections} detections, {self.num_groundtruth} GT boxes)")


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the PR curve with the precision envelope (recall sorted ascending)."""
    if len(precision) == 0:
        return 0.0
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0] + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def person_ap(
    detections: Mapping[KeyframeKey, KeyframeDetections],
    groundtruth: Mapping[KeyframeKey, KeyframeDetections],
    iou_threshold: float = 0.5,
) -> PersonAP:
    """AP of ``detections`` against ``groundtruth`` over the keyframes of ``groundtruth``.

    Detections at keyframes without ground truth are ignored (they were not annotated).
    """
    num_gt = sum(len(g) for g in groundtruth.values())
    scores: list[np.ndarray] = []
    hits: list[np.ndarray] = []
    for key, gt in groundtruth.items():
        det = detections.get(key)
        if det is None or len(det) == 0:
            continue
        order = np.argsort(-det.scores, kind="stable")
        tp = np.zeros(len(order), dtype=bool)
        if len(gt):
            iou = np.asarray(box_iou(det.boxes[order].astype(np.float64), gt.boxes.astype(np.float64)))
            taken = np.zeros(len(gt), dtype=bool)
            best = iou.argmax(axis=1)
            for i in range(len(order)):  # highest score first; a duplicate of a taken box is a FP
                j = int(best[i])
                if iou[i, j] >= iou_threshold and not taken[j]:
                    taken[j] = True
                    tp[i] = True
        scores.append(det.scores[order])
        hits.append(tp)
    if not scores or num_gt == 0:
        return PersonAP(0.0, 0.0, num_gt, 0, iou_threshold)
    all_scores = np.concatenate(scores)
    all_hits = np.concatenate(hits)[np.argsort(-all_scores, kind="stable")]
    tp_cum = np.cumsum(all_hits)
    precision = tp_cum / np.arange(1, len(all_hits) + 1)
    recall = tp_cum / num_gt
    return PersonAP(average_precision(precision, recall), float(recall[-1]), num_gt, len(all_hits), iou_threshold)
