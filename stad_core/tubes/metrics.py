"""Dense frame-mAP and video-mAP for tube datasets (MultiSports, UCF101-24, JHMDB).

Frame detections are an ``[N, 8]`` array of rows ``video_index, frame, label_index, score, x1, y1,
x2, y2`` (video index into the split's test list, frames from 1, labels from 0, pixel boxes). Video
detections map ``label_index -> list of (video, score, tube [n, 6])``.

The defaults reproduce the official MultiSports evaluator: every annotated frame of a ground-truth
tube is a ground-truth box; detections are ranked by score (the same ``argsort`` as the public code,
so ties rank identically); a detection is compared with its best-overlapping ground truth only and is a
true positive iff that overlap reaches the threshold and that ground truth is not taken yet; AP is the
VOC all-points area; classes without ground truth are left out of the mean; six MultiSports classes are
not evaluated. ``EvalSettings`` holds each of these rules, and the ``"act"`` preset gives the variant of
the ACT/MOC code used for UCF101-24 and JHMDB (inclusive pixel boxes, +1 frame spans, a matched ground
truth is removed so later detections fall back to the next best, trapezoid AP starting at precision 1).
Matching one detection against many thresholds reuses its overlaps, so v-mAP at 0.1:0.9 costs about
as much as one threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from stad_core.evaluation.ap import precision_recall, voc_average_precision
from stad_core.tubes.gt import TubeGroundTruth
from stad_core.tubes.iou import iou_pairs, tube_iou
from stad_core.tubes.linking import tube_nms

#: Classes the official MultiSports evaluator leaves out (too few test instances).
MULTISPORTS_SKIPPED: tuple[str, ...] = (
    "aerobic kick jump",
    "aerobic off axis jump",
    "aerobic butterfly jump",
    "aerobic balance turn",
    "basketball save",
    "basketball jump ball",
)
#: The thresholds of "v-mAP@0.1:0.9".
#: Computed as the public code does (``0.1 + 0.1 * i``: 0.30000000000000004, ...) so that an overlap
#: lying exactly on a threshold is judged identically.
VIDEO_THRESHOLDS: tuple[float, ...] = tuple(0.1 + 0.1 * i for i in range(9))

VideoDetections = Mapping[int, Sequence[tuple[str, float, np.ndarray]]]


@dataclass(frozen=True)
class EvalSettings:
    """Rules of the tube evaluation (defaults: the official MultiSports evaluator)."""

    ap: Literal["voc", "act"] = "voc"  # voc: all-points area; act: trapezoid from (recall 0, precision 1)
    matching: Literal["best_only", "remove_matched"] = "best_only"
    pixel_offset: float = 0.0
    temporal_offset: float = 0.0
    skip_labels: tuple[str, ...] = MULTISPORTS_SKIPPED
    include_empty_classes: bool = False  # ACT averages over every label, AP 0 where there is no GT
    tube_nms: float | None = None  # MOC suppresses tubes of a video/class overlapping a better one by > 0.3
    split: int = 0  # which test list of the file (0-based; JHMDB has three)


PRESETS: dict[str, EvalSettings] = {
    "multisports": EvalSettings(),
    "act": EvalSettings(ap="act", matching="remove_matched", pixel_offset=1.0, temporal_offset=1.0,
                        skip_labels=(), include_empty_classes=True, tube_nms=0.3),
}


def settings_for(preset: str = "multisports", **overrides: Any) -> EvalSettings:
    if preset not in PRESETS:
        raise ValueError(f"unknown tube evaluation preset {preset!r} (choose from {', '.join(PRESETS)})")
    return replace(PRESETS[preset], **overrides)


@dataclass
class APResult:
    """AP per class (fractions in [0, 1]) at one IoU threshold, and their mean over evaluated classes."""

    threshold: float
    per_class: dict[str, float]
    num_gt: dict[str, int]
    num_det: dict[str, int]
    mean: float = field(init=False)

    def __post_init__(self) -> None:
        self.mean = float(np.mean(list(self.per_class.values()))) if self.per_class else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ap(tp_ranked: np.ndarray, num_gt: int, method: str) -> float:
    precision, recall = precision_recall(tp_ranked, num_gt)
    if method == "voc":
        return voc_average_precision(precision, recall)
    p = np.concatenate([[1.0], precision])
    r = np.concatenate([[0.0], recall])
    return float(np.sum((r[1:] - r[:-1]) * (p[1:] + p[:-1]) * 0.5))


def _true_positives(ranked_best: np.ndarray, ranked_gt: np.ndarray, threshold: float) -> np.ndarray:
    """``best_only`` rule: a hit on a not-yet-taken ground truth (first in rank order) is a TP."""
    hit = ranked_best >= threshold
    tp = np.zeros(len(ranked_best), dtype=bool)
    positions = np.flatnonzero(hit)
    if positions.size:
        _, first = np.unique(ranked_gt[positions], return_index=True)
        tp[positions[first]] = True
    return tp


def _sequential_true_positives(candidates: list[tuple[np.ndarray, np.ndarray]], threshold: float) -> np.ndarray:
    """``remove_matched`` rule: each detection (rank order) takes its best still-free ground truth."""
    taken: set[int] = set()
    tp = np.zeros(len(candidates), dtype=bool)
    for i, (gt_ids, ious) in enumerate(candidates):
        if gt_ids.size == 0:
            continue
        free = np.fromiter((g not in taken for g in gt_ids.tolist()), bool, len(gt_ids))
        if not free.any():
            continue
        k = int(np.argmax(np.where(free, ious, -np.inf)))
        if ious[k] >= threshold:
            taken.add(int(gt_ids[k]))
            tp[i] = True
    return tp


def _evaluated_labels(gt: TubeGroundTruth, settings: EvalSettings) -> list[int]:
    skip = set(settings.skip_labels)
    return [i for i, name in enumerate(gt.labels) if name not in skip]


def frame_ap(
    gt: TubeGroundTruth, detections: np.ndarray, *, threshold: float = 0.5, settings: EvalSettings = EvalSettings()
) -> APResult:
    """Dense frame-AP per class at ``threshold`` over every annotated frame of the test split.

    Args:
        detections: ``[N, 8]`` rows ``video_index, frame, label_index, score, x1, y1, x2, y2``.
    """
    dets_all = np.asarray(detections).reshape(-1, 8)  # dtype kept: a float32 file ranks ties as the public code
    vlist = gt.videos(settings.split)
    per_class: dict[str, float] = {}
    num_gt: dict[str, int] = {}
    num_det: dict[str, int] = {}
    for ilabel in _evaluated_labels(gt, settings):
        name = gt.labels[ilabel]
        dets = dets_all[dets_all[:, 2] == ilabel]
        # Ground-truth boxes of this class, keyed by (video index, frame), in tube order per key.
        keys, boxes = [], []
        for iv, v in enumerate(vlist):
            for tube in gt.gttubes.get(v, {}).get(ilabel, []):
                keys.append(iv * 10_000_000 + tube[:, 0].astype(np.int64))
                boxes.append(tube[:, 1:5])
        n_gt = int(sum(len(k) for k in keys))
        if n_gt == 0 and not settings.include_empty_classes:
            continue
        num_gt[name], num_det[name] = n_gt, len(dets)
        if n_gt == 0:
            per_class[name] = 0.0
            continue
        gt_key = np.concatenate(keys)
        gt_box = np.concatenate(boxes)
        gt_order = np.argsort(gt_key, kind="stable")  # keeps tube order within a frame
        gt_key, gt_box = gt_key[gt_order], gt_box[gt_order]

        ranked = np.argsort(-dets[:, 3])  # the public code's call on the same dtype: identical tie order
        dets = dets.astype(np.float64)
        det_key = dets[ranked, 0].astype(np.int64) * 10_000_000 + dets[ranked, 1].astype(np.int64)
        lo = np.searchsorted(gt_key, det_key, side="left")
        hi = np.searchsorted(gt_key, det_key, side="right")
        counts = hi - lo
        pair_det = np.repeat(np.arange(len(ranked)), counts)
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        pair_gt = np.arange(len(pair_det)) + starts
        pair_iou = iou_pairs(dets[ranked[pair_det], 4:8], gt_box[pair_gt], settings.pixel_offset)

        if settings.matching == "best_only":
            best_iou = np.full(len(ranked), -1.0)
            best_gt = np.full(len(ranked), -1, dtype=np.int64)
            if pair_det.size:
                # first maximum per detection (np.argmax semantics): sort by det, -iou, gt position
                order = np.lexsort((pair_gt, -pair_iou, pair_det))
                first = order[np.r_[True, pair_det[order][1:] != pair_det[order][:-1]]]
                best_iou[pair_det[first]] = pair_iou[first]
                best_gt[pair_det[first]] = pair_gt[first]
            tp = _true_positives(best_iou, best_gt, threshold)
        else:
            bounds = np.concatenate([[0], np.cumsum(counts)])
            cands = [(pair_gt[bounds[i]:bounds[i + 1]], pair_iou[bounds[i]:bounds[i + 1]]) for i in range(len(ranked))]
            tp = _sequential_true_positives(cands, threshold)
        per_class[name] = _ap(tp, n_gt, settings.ap)
    return APResult(threshold, per_class, num_gt, num_det)


@dataclass
class _ClassOverlaps:
    """One class's ranked tube detections and their overlaps with the ground truth of their video."""

    name: str
    num_gt: int
    candidates: list[tuple[np.ndarray, np.ndarray]]  # per ranked detection: (global GT ids, IoUs)
    best_iou: np.ndarray = field(init=False)  # [D] overlap with the first best GT (-1: none in the video)
    best_gt: np.ndarray = field(init=False)  # [D] its global id (-1: none)

    def __post_init__(self) -> None:
        self.best_iou = np.full(len(self.candidates), -1.0)
        self.best_gt = np.full(len(self.candidates), -1, dtype=np.int64)
        for i, (ids, ious) in enumerate(self.candidates):
            if ids.size:
                k = int(np.argmax(ious))  # first maximum, as the public code
                self.best_iou[i], self.best_gt[i] = ious[k], ids[k]


def _tube_overlaps(gt: TubeGroundTruth, detections: VideoDetections, settings: EvalSettings) -> list[_ClassOverlaps]:
    vlist = gt.videos(settings.split)
    out = []
    for ilabel in _evaluated_labels(gt, settings):
        name = gt.labels[ilabel]
        gt_tubes: dict[str, list[tuple[int, np.ndarray]]] = {}
        gid = 0
        for v in vlist:
            tubes = gt.gttubes.get(v, {}).get(ilabel, [])
            if tubes:
                gt_tubes[v] = [(gid + i, t) for i, t in enumerate(tubes)]
                gid += len(tubes)
        if gid == 0 and not settings.include_empty_classes:
            continue
        dets = list(detections.get(ilabel, []))
        if settings.tube_nms is not None:
            dets = _suppress_tubes(dets, vlist, settings)
        # np.array of the scores as given (float32 scalars stay float32), as the public code ranks them
        ranked = np.argsort(-np.array([d[1] for d in dets])) if dets else np.zeros(0, np.int64)
        cands = []
        for j in ranked:
            v, _, tube = dets[j]
            tube = np.asarray(tube, dtype=np.float64)
            tubes = gt_tubes.get(v, [])
            ious = np.array([tube_iou(g, tube, pixel_offset=settings.pixel_offset,
                                      temporal_offset=settings.temporal_offset) for _, g in tubes])
            cands.append((np.array([i for i, _ in tubes], dtype=np.int64), ious))
        out.append(_ClassOverlaps(name, gid, cands))
    return out


def _suppress_tubes(dets: list[tuple[str, float, np.ndarray]], vlist: Sequence[str],
                    settings: EvalSettings) -> list[tuple[str, float, np.ndarray]]:
    """Tube NMS per video (test-list order, then any others), kept tubes best first, as MOC's videoAP."""
    by_video: dict[str, list[tuple[str, float, np.ndarray]]] = {}
    for d in dets:
        by_video.setdefault(d[0], []).append(d)
    order = [v for v in vlist if v in by_video] + [v for v in by_video if v not in set(vlist)]
    out = []
    for v in order:
        tubes = [(s, np.asarray(t, dtype=np.float64)) for _, s, t in by_video[v]]
        keep = tube_nms(tubes, settings.tube_nms, pixel_offset=settings.pixel_offset,  # type: ignore[arg-type]
                        temporal_offset=settings.temporal_offset)
        out += [by_video[v][i] for i in keep]
    return out


def video_ap(
    gt: TubeGroundTruth,
    detections: VideoDetections,
    *,
    thresholds: Sequence[float] = (0.2, 0.5),
    settings: EvalSettings = EvalSettings(),
) -> dict[float, APResult]:
    """Video-AP per class at each threshold (spatio-temporal tube IoU, see ``tube_iou``).

    Args:
        detections: ``label_index -> [(video, score, tube [n, 6] frame, x1, y1, x2, y2, box score)]``.
    """
    classes = _tube_overlaps(gt, detections, settings)
    results: dict[float, APResult] = {}
    for thr in thresholds:
        per_class, num_gt, num_det = {}, {}, {}
        for c in classes:
            num_gt[c.name], num_det[c.name] = c.num_gt, len(c.candidates)
            if c.num_gt == 0:
                per_class[c.name] = 0.0
                continue
            if settings.matching == "best_only":
                tp = _true_positives(c.best_iou, c.best_gt, thr)
            else:
                tp = _sequential_true_positives(c.candidates, thr)
            per_class[c.name] = _ap(tp, c.num_gt, settings.ap)
        results[float(thr)] = APResult(float(thr), per_class, num_gt, num_det)
    return results


def video_map_summary(results: Mapping[float, APResult]) -> dict[str, float]:
    """``v-mAP@0.2``, ``v-mAP@0.5`` and ``v-mAP@0.1:0.9`` (the mean over 0.1..0.9) where present."""
    out = {f"v-mAP@{t:g}": r.mean for t, r in results.items() if t in (0.2, 0.5)}  # 0.1 + 0.1 * i is exact here
    if all(t in results for t in VIDEO_THRESHOLDS):
        out["v-mAP@0.1:0.9"] = float(np.mean([results[t].mean for t in VIDEO_THRESHOLDS]))
    return out
