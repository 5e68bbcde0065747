"""Box and tube overlaps with the conventions of the public tube evaluators as settings.

``pixel_offset`` is added to widths and heights (0: continuous boxes, as the MultiSports evaluator;
1: inclusive pixel boxes, as the ACT/MOC code). ``temporal_offset`` is added to the temporal
intersection and union of two tubes (0 in MultiSports, where frames ``a..b`` span ``b - a``; 1 in
ACT/MOC, where they span ``b - a + 1``).

A tube is an ``[n, >=5]`` array of rows ``frame, x1, y1, x2, y2[, score]`` with increasing frames.
"""

from __future__ import annotations

import numpy as np


def iou_one_to_many(boxes: np.ndarray, box: np.ndarray, pixel_offset: float = 0.0) -> np.ndarray:
    """IoU ``[N]`` of ``boxes [N, 4]`` with one ``box [4]``; an empty union gives 0 (not NaN)."""
    xmin = np.maximum(boxes[:, 0], box[0])
    ymin = np.maximum(boxes[:, 1], box[1])
    xmax = np.minimum(boxes[:, 2] + pixel_offset, box[2] + pixel_offset)
    ymax = np.minimum(boxes[:, 3] + pixel_offset, box[3] + pixel_offset)
    inter = np.maximum(0, xmax - xmin) * np.maximum(0, ymax - ymin)
    return _ratio(inter, _area(boxes, pixel_offset) + _area(box[None], pixel_offset) - inter)


def iou_pairs(a: np.ndarray, b: np.ndarray, pixel_offset: float = 0.0) -> np.ndarray:
    """Row-wise IoU ``[N]`` of ``a [N, 4]`` and ``b [N, 4]``."""
    xmin = np.maximum(a[:, 0], b[:, 0])
    ymin = np.maximum(a[:, 1], b[:, 1])
    xmax = np.minimum(a[:, 2] + pixel_offset, b[:, 2] + pixel_offset)
    ymax = np.minimum(a[:, 3] + pixel_offset, b[:, 3] + pixel_offset)
    inter = np.maximum(0, xmax - xmin) * np.maximum(0, ymax - ymin)
    return _ratio(inter, _area(a, pixel_offset) + _area(b, pixel_offset) - inter)


def _area(b: np.ndarray, pixel_offset: float) -> np.ndarray:
    return (b[:, 2] - b[:, 0] + pixel_offset) * (b[:, 3] - b[:, 1] + pixel_offset)


def _ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    out = np.zeros(np.shape(inter), dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def temporal_iou(a: np.ndarray, b: np.ndarray, temporal_offset: float = 0.0) -> float:
    """Temporal IoU of two tubes' frame spans (first to last row)."""
    tmin, tmax = max(a[0, 0], b[0, 0]), min(a[-1, 0], b[-1, 0])
    if tmax < tmin:
        return 0.0
    union = max(a[-1, 0], b[-1, 0]) - min(a[0, 0], b[0, 0]) + temporal_offset
    inter = tmax - tmin + temporal_offset
    return 1.0 if union <= 0 else float(inter / union)  # two single-frame tubes on the same frame


def tube_iou(a: np.ndarray, b: np.ndarray, *, pixel_offset: float = 0.0, temporal_offset: float = 0.0,
             spatial_only: bool = False) -> float:
    """Spatio-temporal IoU: temporal IoU times the mean per-frame box IoU over the temporal overlap.

    The mean runs over the frames of ``[max start, min end]`` that either tube has; a frame that only
    one tube has counts as IoU 0 (the public code assumes gap-free tubes and would fail there).
    """
    tmin, tmax = max(a[0, 0], b[0, 0]), min(a[-1, 0], b[-1, 0])
    if tmax < tmin:
        return 0.0
    ia = a[(a[:, 0] >= tmin) & (a[:, 0] <= tmax)]
    ib = b[(b[:, 0] >= tmin) & (b[:, 0] <= tmax)]
    if len(ia) == len(ib) and np.array_equal(ia[:, 0], ib[:, 0]):
        spatial = float(np.mean(iou_pairs(ia[:, 1:5], ib[:, 1:5], pixel_offset)))
    else:
        frames = np.union1d(ia[:, 0], ib[:, 0])
        pa = np.searchsorted(ia[:, 0], frames)
        pb = np.searchsorted(ib[:, 0], frames)
        has = (pa < len(ia)) & (pb < len(ib))
        has[has] &= (ia[pa[has], 0] == frames[has]) & (ib[pb[has], 0] == frames[has])
        ious = np.zeros(len(frames))
        ious[has] = iou_pairs(ia[pa[has], 1:5], ib[pb[has], 1:5], pixel_offset)
        spatial = float(np.mean(ious))
    if spatial_only:
        return spatial
    return spatial * temporal_iou(a, b, temporal_offset)
