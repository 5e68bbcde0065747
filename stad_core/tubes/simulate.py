"""Generated tube ground truth and noisy detections (for known-answer checks, comparisons and benchmarks).

Nothing here is a model: ground-truth tubes are random walks of boxes, detections are jittered copies
plus distractors, with scores rounded to two decimals so that ties (and their ranking) get exercised.
"""

from __future__ import annotations

import numpy as np

from stad_core.tubes.gt import TubeGroundTruth


def random_ground_truth(
    num_videos: int,
    num_labels: int = 6,
    *,
    frames: tuple[int, int] = (60, 160),
    tubes_per_video: tuple[int, int] = (1, 3),
    size: tuple[int, int] = (720, 1280),
    seed: int = 0,
) -> TubeGroundTruth:
    """Random ground truth: every video is a test video; tubes of random class, span and trajectory."""
    rng = np.random.default_rng(seed)
    h, w = size
    videos = [f"sport/v_{i:05d}" for i in range(num_videos)]
    nframes, gttubes = {}, {}
    for v in videos:
        n = int(rng.integers(frames[0], frames[1] + 1))
        nframes[v] = n
        by_label: dict[int, list[np.ndarray]] = {}
        for _ in range(int(rng.integers(tubes_per_video[0], tubes_per_video[1] + 1))):
            label = int(rng.integers(num_labels))
            length = int(rng.integers(max(2, n // 6), n // 2 + 1))
            start = int(rng.integers(1, n - length + 2))
            f = np.arange(start, start + length, dtype=np.float64)
            bw, bh = rng.uniform(0.08, 0.2) * w, rng.uniform(0.2, 0.45) * h
            cx = np.clip(rng.uniform(0.2, 0.8) * w + np.cumsum(rng.normal(0, 4, length)), bw / 2, w - bw / 2)
            cy = np.clip(rng.uniform(0.3, 0.7) * h + np.cumsum(rng.normal(0, 2, length)), bh / 2, h - bh / 2)
            tube = np.stack([f, cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
            by_label.setdefault(label, []).append(np.round(tube, 1))
        gttubes[v] = by_label
    labels = [f"sport action {k}" for k in range(num_labels)]
    return TubeGroundTruth(labels, [[]], [videos], nframes, {v: (h, w) for v in videos}, gttubes)


def _jitter(boxes: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    wh = np.concatenate([boxes[:, 2:4] - boxes[:, 0:2]] * 2, axis=1)
    return np.round(boxes + rng.normal(0, scale, boxes.shape) * wh, 1)


def noisy_frame_detections(
    gt: TubeGroundTruth, *, seed: int = 1, recall: float = 0.85, jitter: float = 0.06, wrong_class: float = 0.3,
    distractors: float = 0.02,
) -> np.ndarray:
    """``[N, 8]`` frame detections (video_index, frame, label, score, x1, y1, x2, y2) around the GT tubes."""
    rng = np.random.default_rng(seed)
    rows = []
    nl = len(gt.labels)
    for iv, v in enumerate(gt.videos()):
        h, w = gt.resolution[v]
        for label, tubes in gt.gttubes[v].items():
            for tube in tubes:
                keep = rng.random(len(tube)) < recall
                t = tube[keep]
                n = len(t)
                boxes = _jitter(t[:, 1:5], rng, jitter)
                scores = np.round(rng.uniform(0.3, 1.0, n), 2)
                rows.append(np.column_stack([np.full(n, iv), t[:, 0], np.full(n, label), scores, boxes]))
                wrong = rng.random(n) < wrong_class
                other = (label + rng.integers(1, nl, wrong.sum())) % nl if nl > 1 else np.zeros(wrong.sum())
                rows.append(np.column_stack([np.full(wrong.sum(), iv), t[wrong, 0], other,
                                             np.round(rng.uniform(0.0, 0.7, wrong.sum()), 2), boxes[wrong]]))
        n_fp = int(distractors * gt.nframes[v] * nl)
        if n_fp:
            x1 = rng.uniform(0, 0.8 * w, n_fp)
            y1 = rng.uniform(0, 0.6 * h, n_fp)
            rows.append(np.column_stack([
                np.full(n_fp, iv), rng.integers(1, gt.nframes[v] + 1, n_fp), rng.integers(0, nl, n_fp),
                np.round(rng.uniform(0.0, 0.6, n_fp), 2), np.round(np.column_stack(
                    [x1, y1, x1 + rng.uniform(0.05, 0.2) * w, y1 + rng.uniform(0.1, 0.4) * h]), 1)]))
    return np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 8))


def noisy_video_detections(
    gt: TubeGroundTruth, *, seed: int = 2, recall: float = 0.9, jitter: float = 0.05, extra: float = 1.0,
) -> dict[int, list[tuple[str, float, np.ndarray]]]:
    """Tube detections: trimmed/extended jittered GT tubes, some relabelled, plus random tubes."""
    rng = np.random.default_rng(seed)
    nl = len(gt.labels)
    out: dict[int, list[tuple[str, float, np.ndarray]]] = {k: [] for k in range(nl)}
    for v in gt.videos():
        n = gt.nframes[v]
        for label, tubes in gt.gttubes[v].items():
            for tube in tubes:
                if rng.random() > recall:
                    continue
                a = int(np.clip(tube[0, 0] + rng.integers(-10, 11), 1, n))
                b = int(np.clip(tube[-1, 0] + rng.integers(-10, 11), a, n))
                frames = np.arange(a, b + 1, dtype=np.float64)
                src = np.clip(np.searchsorted(tube[:, 0], frames), 0, len(tube) - 1)
                boxes = _jitter(tube[src, 1:5], rng, jitter)
                det = np.column_stack([frames, boxes, np.round(rng.uniform(0.2, 1.0, len(frames)), 2)])
                cls = label if rng.random() > 0.2 else int(rng.integers(nl))
                out[cls].append((v, float(np.round(rng.uniform(0.1, 1.0), 2)), det))
        for _ in range(rng.poisson(extra)):
            a = int(rng.integers(1, n))
            b = int(rng.integers(a, n + 1))
            k = int(rng.integers(nl))
            src_tubes = [t for ts in gt.gttubes[v].values() for t in ts]
            if src_tubes and rng.random() < 0.5:  # a detection near some actor, wrong span
                t = src_tubes[int(rng.integers(len(src_tubes)))]
                frames = np.arange(a, b + 1, dtype=np.float64)
                src = np.clip(np.searchsorted(t[:, 0], frames), 0, len(t) - 1)
                boxes = _jitter(t[src, 1:5], rng, 0.1)
            else:
                h, w = gt.resolution[v]
                frames = np.arange(a, b + 1, dtype=np.float64)
                x, y = rng.uniform(0, 0.8 * w), rng.uniform(0, 0.6 * h)
                boxes = np.tile([x, y, x + 0.15 * w, y + 0.3 * h], (len(frames), 1))
            det = np.column_stack([frames, boxes, np.full(len(frames), 0.5)])
            out[k].append((v, float(np.round(rng.uniform(0.0, 0.6), 2)), det))
    return out
