"""Person tracks: give detections an identity across time with an IoU tracker (appearance optional).

A step is one frame or one keyframe; ``boxes[t]`` holds the detections of step ``t``. Each detection is
matched to a track that was last seen at most ``max_gap`` steps earlier, by IoU between the detection
and the track's predicted box (the last box moved by the track's recent velocity, so two actors that
cross keep their ids); optional appearance features (the bank's RoI features) weigh in among the pairs
that overlap enough. Unmatched detections open new tracks. Ids are ``0, 1, 2, ...`` in order of first
appearance (within a step, in detection order), so equal inputs always give equal ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from stad_core.boxes import box_iou


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # [4] last matched box
    step: int  # step of the last match
    velocity: np.ndarray  # [4] box change per step (smoothed)
    hits: int = 1
    appearance: np.ndarray | None = None  # [D] unit-norm smoothed feature (with ``features``)

    def predict(self, step: int, motion: bool) -> np.ndarray:
        if not motion:
            return self.box
        return self.box + self.velocity * (step - self.step)


def _as_boxes(b: np.ndarray, t: int) -> np.ndarray:
    arr = np.asarray(b, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"assign_tracks: boxes[{t}] must have shape [N, 4] (x1, y1, x2, y2), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"assign_tracks: boxes[{t}] contains NaN or inf")
    return arr


def _match(
    iou: np.ndarray, det_scores: np.ndarray, threshold: float, method: str
) -> list[tuple[int, int]]:
    """Pairs (track row, detection column) with IoU >= threshold, by Hungarian or greedy matching."""
    if iou.size == 0:
        return []
    if method == "hungarian":
        rows, cols = linear_sum_assignment(-iou)
        return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= threshold]
    # Greedy: best IoU first; ties go to the higher-scoring detection, then to the earlier track.
    r_idx, c_idx = np.nonzero(iou >= threshold)
    order = np.lexsort((r_idx, -det_scores[c_idx], -iou[r_idx, c_idx]))
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for k in order:
        r, c = int(r_idx[k]), int(c_idx[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


def assign_tracks(
    boxes: Sequence[np.ndarray],
    scores: Sequence[np.ndarray] | None = None,
    *,
    iou_threshold: float = 0.3,
    max_gap: int = 2,
    method: Literal["hungarian", "greedy"] = "hungarian",
    motion: bool = True,
    momentum: float = 0.5,
    min_score: float = 0.0,
    features: Sequence[np.ndarray] | None = None,
    appearance_weight: float = 0.5,
) -> list[np.ndarray]:
    """Track ids for every detection of every step.

    Args:
        boxes: per step ``t`` an ``[N_t, 4]`` array of x1, y1, x2, y2 (any consistent units).
        scores: optional per step ``[N_t]`` detection scores; greedy matching prefers higher scores and
            detections scoring below ``min_score`` never open a new track (they get id ``-1`` unless
            they continue one).
        iou_threshold: least IoU between a detection and a track's predicted box to continue it.
        max_gap: a track may be continued up to this many steps after its last match (1 = only from
            the previous step).
        method: ``"hungarian"`` maximises the summed IoU per step; ``"greedy"`` takes the best pairs first.
        motion: predict a track's box with its smoothed velocity (keeps ids through crossings).
        momentum: weight of the old velocity when updating it (0 = last displacement only).
        min_score: see ``scores``.
        features: optional per step ``[N_t, D]`` appearance features (e.g. the bank's RoI features).
            Pairs must still pass ``iou_threshold``; among those, matching maximises
            ``(1 - appearance_weight) * IoU + appearance_weight * cosine(track, detection)``.
        appearance_weight: see ``features``.

    Returns:
        per step an int64 ``[N_t]`` array of track ids (``0, 1, 2, ...`` in order of first appearance).
    """
    if max_gap < 1:
        raise ValueError(f"assign_tracks: max_gap must be >= 1, got {max_gap}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"assign_tracks: iou_threshold must be in [0, 1], got {iou_threshold}")
    if method not in ("hungarian", "greedy"):
        raise ValueError(f"assign_tracks: unknown method {method!r} (hungarian or greedy)")
    if scores is not None and len(scores) != len(boxes):
        raise ValueError(f"assign_tracks: {len(scores)} score arrays for {len(boxes)} box arrays")
    if features is not None and len(features) != len(boxes):
        raise ValueError(f"assign_tracks: {len(features)} feature arrays for {len(boxes)} box arrays")

    tracks: list[_Track] = []
    next_id = 0
    out: list[np.ndarray] = []
    for t, raw in enumerate(boxes):
        dets = _as_boxes(raw, t)
        n = len(dets)
        if scores is None:
            det_scores = np.ones(n)
        else:
            det_scores = np.asarray(scores[t], dtype=np.float64).reshape(-1)
            if len(det_scores) != n:
                raise ValueError(f"assign_tracks: step {t} has {n} boxes but {len(det_scores)} scores")
        feats = None
        if features is not None:
            feats = np.asarray(features[t], dtype=np.float64).reshape(n, -1)
            feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        ids = np.full(n, -1, dtype=np.int64)
        alive = [tr for tr in tracks if t - tr.step <= max_gap]
        if alive and n:
            predicted = np.stack([tr.predict(t, motion) for tr in alive])
            iou = box_iou(predicted, dets)
            affinity = iou
            if feats is not None:
                apps = np.stack([tr.appearance if tr.appearance is not None else np.zeros(feats.shape[1])
                                 for tr in alive])
                mixed = (1 - appearance_weight) * iou + appearance_weight * (apps @ feats.T)
                # the IoU gate stays: pairs below it get -1 and are never accepted (threshold on mixed <= 1)
                affinity = np.where(iou >= iou_threshold, mixed, -1.0)
            pairs = _match(affinity, det_scores, -0.5 if feats is not None else iou_threshold, method)
            for r, c in pairs:
                if iou[r, c] < iou_threshold:
                    continue
                tr = alive[r]
                step_velocity = (dets[c] - tr.box) / (t - tr.step)
                tr.velocity = step_velocity if tr.hits == 1 else momentum * tr.velocity + (1 - momentum) * step_velocity
                tr.box, tr.step, tr.hits = dets[c].copy(), t, tr.hits + 1
                if feats is not None and tr.appearance is not None:
                    app = momentum * tr.appearance + (1 - momentum) * feats[c]
                    tr.appearance = app / max(float(np.linalg.norm(app)), 1e-12)
                ids[c] = tr.track_id
        for c in np.flatnonzero(ids < 0):
            if det_scores[c] < min_score:
                continue
            tracks.append(_Track(next_id, dets[c].copy(), t, np.zeros(4),
                                 appearance=None if feats is None else feats[c].copy()))
            ids[c] = next_id
            next_id += 1
        # Forget tracks that can no longer be continued (keeps each step O(alive tracks)).
        tracks = [tr for tr in tracks if t - tr.step < max_gap]
        out.append(ids)
    return out
