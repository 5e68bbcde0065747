"""Detection files of tube datasets, read with the safe unpickler and checked row by row.

* frame detections: an ``[N, 8]`` array (or a list of ``[8]`` arrays) of ``video_index, frame,
  label_index, score, x1, y1, x2, y2`` -- the MultiSports ``frame_detections.pkl`` layout;
* per-class frame detections: a list of dicts ``{"video": name, "frame": int, "boxes": [N, 4],
  "scores": [N, C]}`` (a detector's boxes with a score per class, as MMAction2's MultiSports models
  give them); converted to the rows above;
* video detections: ``{label_index: [(video, score, tube [n, 6]), ...]}`` -- ``video_detections.pkl``.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stad_core.atomic import atomic_write_bytes
from stad_core.errors import InputFileError
from stad_core.tubes.gt import TubeGroundTruth, safe_load_pickle
from stad_core.tubes.linking import expand_class_scores


def check_frame_detections(rows: Any, gt: TubeGroundTruth, split: int, path: str | Path) -> np.ndarray:
    """``[N, 8]`` float64 rows, checked against the ground truth's labels and test list."""
    try:
        arr = np.asarray(rows)
        if not np.issubdtype(arr.dtype, np.floating):  # float32/float64 kept: ties rank as in the public code
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, f"frame detections are not a numeric [N, 8] array ({exc})") from exc
    if arr.size == 0:
        return np.zeros((0, 8))
    if arr.ndim != 2 or arr.shape[1] != 8:
        raise InputFileError(path, f"frame detections must be [N, 8] (video_index, frame, label_index, score, "
                                   f"x1, y1, x2, y2), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputFileError(path, f"row {int(np.flatnonzero(~np.isfinite(arr).all(1))[0])} holds NaN or inf")
    n_videos, n_labels = len(gt.videos(split)), len(gt.labels)
    for col, hi, what in ((0, n_videos, "video_index"), (2, n_labels, "label_index")):
        bad = np.flatnonzero((arr[:, col] < 0) | (arr[:, col] >= hi) | (arr[:, col] != np.round(arr[:, col])))
        if bad.size:
            raise InputFileError(path, f"row {int(bad[0])}: {what} {arr[bad[0], col]:g} is not in 0..{hi - 1}",
                                 hint="video indices point into the split's test_videos list, labels into labels")
    bad = np.flatnonzero(arr[:, 1] < 1)
    if bad.size:
        raise InputFileError(path, f"row {int(bad[0])}: frame {arr[bad[0], 1]:g} < 1 (frames are numbered from 1)")
    return arr


def load_frame_detections(path: str | Path, gt: TubeGroundTruth, split: int = 0) -> np.ndarray:
    """Frame detections from a pickle in either frame layout of the module docstring."""
    data = safe_load_pickle(path)
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return check_frame_detections(per_class_rows(data, gt, split, path), gt, split, path)
    return check_frame_detections(data, gt, split, path)


def per_class_rows(items: Sequence[dict[str, Any]], gt: TubeGroundTruth, split: int = 0,
                   path: str | Path = "<memory>", min_score: float = 0.0) -> np.ndarray:
    """Rows from per-class-score items (``video``, ``frame``, ``boxes [N, 4]``, ``scores [N, C]``)."""
    index = {v: i for i, v in enumerate(gt.videos(split))}
    out = []
    for i, item in enumerate(items):
        try:
            iv = index[item["video"]]
            rows = expand_class_scores(iv, int(item["frame"]), item["boxes"], item["scores"], min_score=min_score)
        except KeyError as exc:
            raise InputFileError(path, f"item {i}: missing key or unknown test video {exc}",
                                 hint="each item needs video (a test video), frame, boxes and scores") from exc
        except ValueError as exc:
            raise InputFileError(path, f"item {i}: {exc}") from exc
        if rows.size and rows[:, 2].max() >= len(gt.labels):
            raise InputFileError(path, f"item {i}: {int(rows[:, 2].max()) + 1} class scores for {len(gt.labels)} labels")
        out.append(rows)
    return np.concatenate(out) if out else np.zeros((0, 8))


def load_video_detections(path: str | Path, gt: TubeGroundTruth) -> dict[int, list[tuple[str, float, np.ndarray]]]:
    """Video detections ``label -> [(video, score, tube [n, >=5])]``, each tube checked."""
    data = safe_load_pickle(path)
    if not isinstance(data, dict):
        raise InputFileError(path, f"video detections must be a dict label_index -> list of tubes, got "
                                   f"{type(data).__name__}")
    out: dict[int, list[tuple[str, float, np.ndarray]]] = {}
    for label, tubes in data.items():
        if not isinstance(label, (int, np.integer)) or not 0 <= int(label) < len(gt.labels):
            raise InputFileError(path, f"label key {label!r} is not an index into the {len(gt.labels)} labels")
        checked = []
        for i, item in enumerate(tubes):
            try:
                v, score, tube = item
                tube = np.asarray(tube, dtype=np.float64)
                score = score if isinstance(score, np.floating) else float(score)  # float32 kept (tie order)
            except (TypeError, ValueError) as exc:
                raise InputFileError(path, f"[{label}][{i}] must be (video, score, tube array)") from exc
            if tube.ndim != 2 or tube.shape[1] < 5 or len(tube) == 0:
                raise InputFileError(path, f"[{label}][{i}]: tube must be [n, 6] (frame, x1, y1, x2, y2, score), "
                                           f"got shape {tube.shape}")
            if np.any(np.diff(tube[:, 0]) <= 0):
                raise InputFileError(path, f"[{label}][{i}]: tube frame numbers must increase")
            checked.append((str(v), score, tube))
        out[int(label)] = checked
    return out


def save_video_detections(tubes: dict[int, list[tuple[str, float, np.ndarray]]], path: str | Path) -> None:
    """Write tubes in the ``video_detections.pkl`` layout (float32 arrays, as the public tools write)."""
    plain = {int(k): [(v, float(s), np.asarray(t, dtype=np.float32)) for v, s, t in ts] for k, ts in tubes.items()}
    atomic_write_bytes(Path(path), pickle.dumps(plain, protocol=4))


def save_frame_detections(rows: np.ndarray, path: str | Path) -> None:
    atomic_write_bytes(Path(path), pickle.dumps(np.asarray(rows, dtype=np.float64), protocol=4))
