"""Charades_v1_localize and per-frame mAP, as the official Charades localization script defines them.

The official script (``Charades_v1_localize.m``, adapted from THUMOS'15) scores a video at
``frames_per_video = 25`` time points ``t_j = (j - 1) / 25 * length`` (j = 1..25, so t_1 = 0 and the
last point is 24/25 of the video). A class is positive at ``t_j`` when some activity of the class has
``start <= t_j <= end``. Every (video, frame) pair is one sample; a pair the submission does not
score gets ``-inf`` for every class. Per class, samples are sorted by decreasing score (ties keep the
ground-truth order: video order of the CSV, then frame number; MATLAB's ``sort`` is stable) and

    AP = (1 / npos) * sum over positives of precision at that positive's rank,

precision = TP / (TP + FP) over the ranked list so far. mAP is the mean of the per-class APs; the
script also prints WAP, the APs weighted by each class's number of positives.

A class with no positive pair has AP = 0/0 in the script (NaN, which would make its plain ``mean``
NaN); here its AP is NaN and mAP is the mean over classes with positives -- the same number whenever
every class has a positive (as on the Charades test set).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stad_core.errors import StadError
from stad_core.temporal.annotations import TemporalVideo
from stad_core.temporal.labels import labels_at

FRAMES_PER_VIDEO = 25


def localize_times(length: float, frames_per_video: int = FRAMES_PER_VIDEO) -> np.ndarray:
    """float64 ``[F]``: the seconds the script scores: ``(j - 1) / F * length`` for j = 1..F."""
    return np.arange(frames_per_video, dtype=np.float64) / frames_per_video * float(length)


def thumos_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP of one class over samples: ``scores [N]`` (higher = more confident), ``labels [N]`` bool.

    NaN when there is no positive. Ranking is a stable sort on ``-score``."""
    labels = np.asarray(labels, bool)
    npos = int(labels.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = labels[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    return float(precision[hits].sum() / npos)


@dataclass(frozen=True)
class FrameMAP:
    """Per-class AP (NaN: no positives), mAP over classes with positives, WAP, positives per class."""

    ap: np.ndarray  # [C]
    map: float
    wap: float
    positives: np.ndarray  # [C] int

    @property
    def classes_scored(self) -> int:
        return int((self.positives > 0).sum())


def frame_map(scores: np.ndarray, labels: np.ndarray) -> FrameMAP:
    """Per-frame mAP: ``scores [N, C]`` and ``labels [N, C]`` over N (video, frame) samples."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise StadError(f"scores {scores.shape} and labels {labels.shape} must both be [N, C]")
    ap = np.array([thumos_ap(scores[:, c], labels[:, c]) for c in range(labels.shape[1])])
    positives = labels.sum(0).astype(np.int64)
    scored = positives > 0
    if not scored.any():
        raise StadError("no class has a positive frame: mAP is undefined")
    mean = float(ap[scored].mean())
    wap = float((ap[scored] * positives[scored]).sum() / positives[scored].sum())
    return FrameMAP(ap, mean, wap, positives)


def localize_groundtruth(videos: Sequence[TemporalVideo], num_classes: int,
                         frames_per_video: int = FRAMES_PER_VIDEO) -> tuple[list[tuple[str, int]], np.ndarray]:
    """The scored pairs ``(video_id, frame)`` (frame 1-based, video order kept) and labels ``[N, C]``."""
    keys: list[tuple[str, int]] = []
    blocks: list[np.ndarray] = []
    for v in videos:
        keys.extend((v.video_id, j) for j in range(1, frames_per_video + 1))
        blocks.append(labels_at(v, localize_times(v.length, frames_per_video), num_classes))
    labels = np.concatenate(blocks) if blocks else np.zeros((0, num_classes), bool)
    return keys, labels


def charades_localize(videos: Sequence[TemporalVideo], predictions: Mapping[tuple[str, int], np.ndarray],
                      num_classes: int, frames_per_video: int = FRAMES_PER_VIDEO) -> FrameMAP:
    """Charades_v1_localize: ``predictions[(video_id, frame)]`` = scores ``[C]`` (frame 1..F);
    missing pairs score ``-inf``; predictions for other videos or frames are ignored."""
    keys, labels = localize_groundtruth(videos, num_classes, frames_per_video)
    scores = np.full(labels.shape, -np.inf)
    for i, key in enumerate(keys):
        row = predictions.get(key)
        if row is not None:
            row = np.asarray(row, np.float64)
            if row.shape != (num_classes,):
                raise StadError(f"prediction for {key[0]} frame {key[1]} has {row.shape} scores, expected {num_classes}")
            scores[i] = row
    return frame_map(scores, labels)


def sample_at_localize_times(step_scores: np.ndarray, length: float, step_seconds: float,
                             frames_per_video: int = FRAMES_PER_VIDEO) -> np.ndarray:
    """``[F, C]`` scores at the script's time points from per-step scores ``[T, C]`` (step t covers
    ``[t, t+1) * step_seconds``): the step containing each time point (clamped to the last step)."""
    times = localize_times(length, frames_per_video)
    index = np.clip(np.floor(times / step_seconds).astype(np.int64), 0, len(step_scores) - 1)
    return np.asarray(step_scores)[index]
