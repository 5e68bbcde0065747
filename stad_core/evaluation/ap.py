"""Average precision the VOC/AVA way: all-points interpolation over a ranked list."""

from __future__ import annotations

import numpy as np


def precision_recall(tp_ranked: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each of the ranked detections.

    Args:
        tp_ranked: ``[D]`` bool, true-positive flags in rank order (best score first).
        num_gt: number of ground-truth instances of the class (> 0).

    Returns:
        precision ``[D]`` and recall ``[D]`` (float64), computed as the official code does
        (cumulative counts as integers, one division each) so values are bit-identical.
    """
    tp_cum = np.cumsum(tp_ranked, dtype=np.int64).astype(np.float64)  # exact: counts < 2**53
    seen = np.arange(1, len(tp_ranked) + 1, dtype=np.int64)  # == tp_cum + fp_cum
    return tp_cum / seen, tp_cum / num_gt


def voc_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the interpolated precision-recall curve (VOC all points).

    Precision is padded with 0 at both ends and recall with 0 and 1, precision is made
    non-increasing from the right, and the area sums ``(r[i] - r[i-1]) * p[i]`` over the points
    where recall changes. An empty ranking (a class with ground truth but no detections) is 0.
    """
    if precision.size == 0:
        return 0.0
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[idx] - r[idx - 1]) * p[idx]))
