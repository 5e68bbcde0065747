"""Online linking of per-frame detections into action tubes, one class at a time.

The rules are those of the public ACT / MOC / MMAction2-MultiSports linking with one-frame tubelets
(K = 1), each a setting of ``LinkSettings``:

1. Per frame and class, the candidates pass a one-pass soft suppression: taking boxes by score, a box
   overlapping a kept one by more than ``nms_threshold`` gets its score multiplied by ``1 - IoU`` (it
   is not removed); the ``top_k`` best after re-scoring remain.
2. Live tubes are visited from the highest mean score down. Each takes, among the candidates whose
   IoU with the tube's last box is at least ``iou_threshold``, the highest-scoring one (which is then
   no longer available to other tubes).
3. A tube that finds no candidate ends once ``end_after`` frames have passed since its last box
   (the public code: 1, i.e. at its first miss). Leftover candidates start new tubes.
4. A tube's score is the mean of its box scores; tubes scoring below ``min_score`` or spanning fewer
   than ``min_length`` frames are dropped. Frames inside a tube that have no box (only possible with
   ``end_after > 1``) get linearly interpolated boxes.

Optional extras (off by default, so the output equals the public code's): ``trim_score`` trims
leading/trailing frames whose box score is below it (a simple temporal trimming), and ``tube_nms``
removes tubes overlapping a better one by more than it (MOC does this at 0.3 before video-AP).
Frame detection rows are ``video_index, frame, label, score, x1, y1, x2, y2`` (frames from 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stad_core.tubes.iou import iou_one_to_many, tube_iou

Tube = tuple[float, np.ndarray]  # (score, [n, 6] frame, x1, y1, x2, y2, box score)


@dataclass(frozen=True)
class LinkSettings:
    iou_threshold: float = 0.5
    nms_threshold: float = 0.6
    top_k: int = 10
    end_after: int = 1
    min_length: int = 15
    min_score: float = 0.005
    pixel_offset: float = 0.0  # linking IoU: 0 as MMAction2/MultiSports, 1 as MOC
    nms_pixel_offset: float = 1.0  # both public versions use inclusive pixels in the suppression step
    trim_score: float | None = None
    tube_nms: float | None = None


def soft_suppress(dets: np.ndarray, threshold: float, top_k: int, pixel_offset: float = 1.0) -> np.ndarray:
    """Step 1 above on ``[m, 5]`` rows ``x1, y1, x2, y2, score``; returns the re-scored top-k, best first."""
    if len(dets) <= 1:  # nothing to suppress (the common case: one box per class and frame)
        return dets[:top_k]
    dets = dets.copy()
    x1, y1, x2, y2, scores = dets.T
    area = (x2 - x1 + pixel_offset) * (y2 - y1 + pixel_offset)
    order = np.argsort(scores)[::-1]
    weight = np.ones_like(scores)
    while order.size > 0:
        i = order[0]
        rest = order[1:]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + pixel_offset)
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + pixel_offset)
        inter = w * h
        ious = inter / (area[rest] + area[i] - inter)
        over = ious > threshold
        weight[rest[over]] = 1 - ious[over]
        order = rest[~over]
    dets[:, 4] = scores * weight
    return dets[np.argsort(dets[:, 4])[::-1]][:top_k]


def _build(boxes: list[tuple[int, np.ndarray]], settings: LinkSettings) -> Tube | None:
    """Scored ``[n, 6]`` tube from its (frame, [5] box+score) list, or None when it is dropped."""
    arr = np.array([[f, *b] for f, b in boxes], dtype=np.float64)
    if settings.trim_score is not None:
        keep = np.flatnonzero(arr[:, 5] >= settings.trim_score)
        if keep.size == 0:
            return None
        arr = arr[keep[0]:keep[-1] + 1]
    score = float(np.mean(arr[:, 5]))
    if score < settings.min_score:
        return None
    begin, end = int(arr[0, 0]), int(arr[-1, 0])
    if end - begin + 1 < settings.min_length:
        return None
    frames = np.arange(begin, end + 1, dtype=np.float64)
    if len(frames) == len(arr):
        return score, arr
    cols = [frames] + [np.interp(frames, arr[:, 0], arr[:, c]) for c in range(1, 6)]
    return score, np.stack(cols, axis=1)


_ONE = np.zeros(1, dtype=np.int64)
_NONE = np.zeros(0, dtype=np.int64)


def _iou(a: np.ndarray, b: np.ndarray, off: float) -> float:
    """IoU of two boxes (first four values) as ``iou_one_to_many`` computes it, in Python floats."""
    ax1, ay1, ax2, ay2 = float(a[0]), float(a[1]), float(a[2]), float(a[3])
    bx1, by1, bx2, by2 = float(b[0]), float(b[1]), float(b[2]), float(b[3])
    inter = max(0.0, min(ax2 + off, bx2 + off) - max(ax1, bx1)) * max(0.0, min(ay2 + off, by2 + off) - max(ay1, by1))
    union = (ax2 - ax1 + off) * (ay2 - ay1 + off) + (bx2 - bx1 + off) * (by2 - by1 + off) - inter
    return inter / union if union > 0 else 0.0


def link_class(
    frames: dict[int, np.ndarray], settings: LinkSettings = LinkSettings(), *, last_frame: int | None = None
) -> list[Tube]:
    """Link one class's candidates of one video; ``frames[f]`` is ``[m, 5]`` (x1, y1, x2, y2, score).

    ``last_frame`` is the video's last frame (default: the last frame with candidates); tubes still
    alive there end with the video. Returns tubes in the order the public code emits them (tubes in
    order of ending, then those alive at the end), which decides ties in video-AP ranking.
    """
    finished: list[list[tuple[int, np.ndarray]]] = []
    current: list[list[tuple[int, np.ndarray]]] = []
    present = sorted(frames)
    if not present:
        return []
    stop = present[-1] if last_frame is None else last_frame
    k = 0
    frame = present[0]
    while frame <= stop:
        cands = frames.get(frame)
        cands = soft_suppress(cands, settings.nms_threshold, settings.top_k, settings.nms_pixel_offset) \
            if cands is not None else np.zeros((0, 5))
        if current:
            if len(current) > 1:  # np.mean, as the public code: the same sums, so the same tie order
                means = [np.mean(np.array([b[4] for _, b in t])) for t in current]
                current = [current[i] for i in np.argsort(-np.array(means))]
            ended = []
            for it, tube in enumerate(current):
                last_seen, last = tube[-1]
                if len(cands) == 1:  # scalar path (same IEEE operations, in the same order)
                    valid = _ONE if _iou(cands[0], last, settings.pixel_offset) >= settings.iou_threshold else _NONE
                elif len(cands):
                    ious = iou_one_to_many(cands[:, :4], last[:4], settings.pixel_offset)
                    valid = np.flatnonzero(ious >= settings.iou_threshold)
                else:
                    valid = _NONE
                if valid.size:
                    idx = valid[np.argmax(cands[valid, 4])]
                    tube.append((frame, cands[idx]))
                    cands = np.delete(cands, idx, axis=0)
                elif frame - last_seen >= settings.end_after:
                    ended.append(it)
            for it in ended[::-1]:
                finished.append(current.pop(it))
        current.extend([(frame, c)] for c in cands)
        # Next frame: every frame while tubes live (they may end there), else the next with candidates.
        while k < len(present) and present[k] <= frame:
            k += 1
        if current:
            frame += 1
        elif k < len(present):
            frame = present[k]
        else:
            break
    finished += current
    out = [t for t in (_build(b, settings) for b in finished) if t is not None]
    if settings.tube_nms is not None:
        out = [out[i] for i in tube_nms(out, settings.tube_nms, pixel_offset=settings.pixel_offset)]
    return out


def tube_nms(tubes: Sequence[Tube], overlap: float, **iou_kwargs: float) -> list[int]:
    """Indices of the tubes kept by greedy NMS on tube IoU (best score first), as MOC's ``nms3dt``."""
    order = list(np.argsort([s for s, _ in tubes]))
    keep: list[int] = []
    while order:
        i = order.pop()
        keep.append(int(i))
        order = [j for j in order if tube_iou(tubes[j][1], tubes[i][1], **iou_kwargs) <= overlap]
    return keep


def link_video(
    rows: np.ndarray, num_labels: int, settings: LinkSettings = LinkSettings(), *, nframes: int | None = None
) -> dict[int, list[Tube]]:
    """Tubes per class of one video from its ``[M, 8]`` frame detection rows (any order).

    Rows keep their input order within a frame (that order breaks score ties, as in the public code).
    ``nframes`` bounds the frames a tube may run into (frames past it never have candidates anyway).
    """
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 8)
    if nframes is not None:
        rows = rows[(rows[:, 1] >= 1) & (rows[:, 1] <= nframes)]
    order = np.lexsort((rows[:, 1], rows[:, 2]))  # stable: by label, then frame, input order kept
    rows = rows[order]
    out: dict[int, list[Tube]] = {}
    labels, starts = np.unique(rows[:, 2].astype(np.int64), return_index=True)
    bounds = list(starts) + [len(rows)]
    for li, label in enumerate(labels):
        if not 0 <= label < num_labels:
            raise ValueError(f"frame detections have label index {label} outside 0..{num_labels - 1}")
        block = rows[bounds[li]:bounds[li + 1]]
        f_idx, f_start = np.unique(block[:, 1].astype(np.int64), return_index=True)
        f_bounds = list(f_start) + [len(block)]
        frames = {int(f): block[f_bounds[i]:f_bounds[i + 1]][:, [4, 5, 6, 7, 3]] for i, f in enumerate(f_idx)}
        out[int(label)] = link_class(frames, settings, last_frame=nframes)
    return out


def link_all(
    detections: np.ndarray, videos: Sequence[str], num_labels: int, settings: LinkSettings = LinkSettings(),
    nframes: dict[str, int] | None = None,
) -> dict[int, list[tuple[str, float, np.ndarray]]]:
    """Video detections (``label -> [(video, score, tube)]``) from all frame detections of a test list."""
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 8)
    out: dict[int, list[tuple[str, float, np.ndarray]]] = {k: [] for k in range(num_labels)}
    if len(detections) == 0:
        return out
    order = np.argsort(detections[:, 0], kind="stable")
    detections = detections[order]
    vids, starts = np.unique(detections[:, 0].astype(np.int64), return_index=True)
    bounds = list(starts) + [len(detections)]
    for i, iv in enumerate(vids):
        if not 0 <= iv < len(videos):
            raise ValueError(f"frame detections have video index {iv} outside 0..{len(videos) - 1}")
        v = videos[iv]
        per_label = link_video(detections[bounds[i]:bounds[i + 1]], num_labels, settings,
                               nframes=None if nframes is None else nframes.get(v))
        for label, tubes in per_label.items():
            out[label].extend((v, score, tube) for score, tube in tubes)
    return out


def expand_class_scores(
    video_index: int, frame: int, boxes: np.ndarray, scores: np.ndarray, *, min_score: float = 0.0,
    top_k: int | None = None,
) -> np.ndarray:
    """Frame detection rows from boxes with a score per class (the MMAction2 MultiSports output).

    Args:
        boxes: ``[N, 4]`` pixel boxes of one frame.
        scores: ``[N, C]`` per-class scores.
        min_score: rows scoring below it are dropped.
        top_k: keep at most this many classes per box (the best ones).

    Returns:
        ``[M, 8]`` rows ``video_index, frame, label, score, x1, y1, x2, y2`` (box-major, label order).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(scores) != len(boxes):
        raise ValueError(f"scores must be [N, C] for {len(boxes)} boxes, got shape {scores.shape}")
    keep = scores >= min_score
    if top_k is not None and top_k < scores.shape[1]:
        kth = -np.sort(-scores, axis=1)[:, top_k - 1:top_k]
        keep &= scores >= kth
    n, c = np.nonzero(keep)
    return np.column_stack([np.full(len(n), video_index), np.full(len(n), frame), c, scores[n, c], boxes[n]])
