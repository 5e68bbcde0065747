"""What ``stad infer`` writes for one video, given its scored actors: the AVA-format CSV with track ids,
the tracks JSON with per-second actions, and the annotated MP4 (streamed: one frame in memory).

The orchestration (detector, backbone, banks, heads) lives in ``storage.stages.infer``; this module
only turns arrays into files.

CSV layout (no header, one row per actor, keyframe and class scoring at least ``min_score``)::

    video_id, timestamp, x1, y1, x2, y2, action_id, person_id, score

the ground-truth layout (person id in column 8) plus the score: the person column holds the track id.
Dropping column 8 gives the usual 8-column AVA detections file.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from stad_core.atomic import atomic_write, atomic_write_text
from stad_core.progress import ProgressFn, report

#: Box colours by track id (RGB), cycled.
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def keyframe_seconds(duration: float, *, stride: int = 1, margin: int = 1) -> list[int]:
    """Whole seconds ``margin, margin + stride, ...`` up to ``duration - margin`` (inclusive): the
    keyframes of a video ``duration`` seconds long (AVA's convention: a keyframe per second)."""
    if stride < 1 or margin < 0:
        raise ValueError("stride must be >= 1 and margin >= 0")
    last = math.floor(duration - margin + 1e-6)
    return list(range(margin, last + 1, stride))


@dataclass(frozen=True)
class ScoredActors:
    """Every scored actor of one video (N rows, K classes).

    timestamps [N] float64 keyframe seconds, boxes [N, 4] float64 normalised xyxy, track_ids [N]
    int64, detector_scores [N] float32, scores [N, K] float32 (columns = ``action_ids``).
    """

    video_id: str
    timestamps: np.ndarray
    boxes: np.ndarray
    track_ids: np.ndarray
    detector_scores: np.ndarray
    scores: np.ndarray
    action_ids: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def top_actions(self, row: int, names: Mapping[int, str], *, threshold: float, top_k: int) -> list[dict[str, Any]]:
        """The row's classes scoring >= ``threshold``, best first, at most ``top_k``."""
        order = np.argsort(-self.scores[row], kind="stable")[:top_k]
        return [{"id": int(self.action_ids[j]), "name": names.get(int(self.action_ids[j]), str(self.action_ids[j])),
                 "score": round(float(self.scores[row, j]), 6)}
                for j in order if self.scores[row, j] >= threshold]


def write_csv(path: str | Path, actors: ScoredActors, *, min_score: float = 0.0) -> Path:
    """The AVA-format CSV (see the module docstring), rows in actor order then class order; 6 decimals."""
    rows = []
    for i in range(len(actors)):
        t = actors.timestamps[i]
        stamp = f"{int(t):04d}" if float(t).is_integer() else repr(float(t))
        box = [f"{v:.6f}" for v in np.round(actors.boxes[i], 6)]
        for j, action in enumerate(actors.action_ids):
            score = float(actors.scores[i, j])
            if score >= min_score:
                rows.append([actors.video_id, stamp, *box, int(action), int(actors.track_ids[i]), f"{round(score, 6):.6f}"])

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)

    atomic_write(Path(path), write)
    return Path(path)


def tracks_document(actors: ScoredActors, names: Mapping[int, str], *, video: Mapping[str, Any],
                    threshold: float, top_k: int) -> dict[str, Any]:
    """The tracks JSON: per track, its seconds with box, detector score and top actions."""
    tracks: dict[int, list[dict[str, Any]]] = {}
    for i in np.lexsort((actors.timestamps, actors.track_ids)):
        tracks.setdefault(int(actors.track_ids[i]), []).append({
            "t": float(actors.timestamps[i]), "box": [round(float(v), 6) for v in actors.boxes[i]],
            "detector_score": round(float(actors.detector_scores[i]), 6),
            "actions": actors.top_actions(int(i), names, threshold=threshold, top_k=top_k),
        })
    return {"video_id": actors.video_id, "video": dict(video), "threshold": threshold, "top_k": top_k,
            "classes": {str(k): v for k, v in names.items()},
            "tracks": [{"track_id": tid, "first": s[0]["t"], "last": s[-1]["t"], "seconds": s}
                       for tid, s in sorted(tracks.items())]}


def write_json(path: str | Path, document: Mapping[str, Any]) -> Path:
    atomic_write_text(Path(path), json.dumps(document, indent=1))
    return Path(path)


@dataclass(frozen=True)
class Overlay:
    """What one keyframe shows: pixel boxes ``[N, 4]``, track ids ``[N]`` and a caption per box."""

    boxes: np.ndarray
    track_ids: np.ndarray
    captions: list[str]


def overlays(actors: ScoredActors, names: Mapping[int, str], *, width: int, height: int, threshold: float,
             top_k: int) -> dict[float, Overlay]:
    """Per keyframe second, the boxes (pixels), ids and ``#id action score`` captions to draw."""
    out: dict[float, Overlay] = {}
    scale = np.array([width, height, width, height], np.float64)
    for t in np.unique(actors.timestamps):
        rows = np.nonzero(actors.timestamps == t)[0]
        captions = []
        for i in rows:
            top = actors.top_actions(int(i), names, threshold=threshold, top_k=top_k)
            captions.append(f"#{int(actors.track_ids[i])} " + ", ".join(f"{a['name']} {a['score']:.2f}" for a in top))
        out[float(t)] = Overlay(actors.boxes[rows] * scale, actors.track_ids[rows], captions)
    return out


def draw(image: np.ndarray, overlay: Overlay) -> np.ndarray:
    """``image`` uint8 ``[H, W, 3]`` with the overlay's boxes and captions drawn (a new array).

    Text scales with the frame (about 1/30 of its height, at least 8 px); frames under 400 px wide
    keep only each caption's first action so small videos stay readable.
    """
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    font = _font(max(8, round(h / 30)))
    thickness = max(1, round(min(h, w) / 240))
    for box, tid, caption in zip(overlay.boxes, overlay.track_ids, overlay.captions, strict=True):
        if w < 400:
            caption = caption.split(", ")[0]
        colour = PALETTE[int(tid) % len(PALETTE)] if tid >= 0 else (255, 255, 255)
        x1, y1, x2, y2 = (float(v) for v in box)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=thickness)
        left, top, right, bottom = pen.textbbox((0, 0), caption, font=font)
        tw, th = right - left, bottom - top
        ty = y1 - th - 2 if y1 - th - 2 >= 0 else min(y2 + 1, h - th - 2)
        tx = min(max(x1, 0), max(w - tw - 2, 0))
        pen.rectangle([tx, ty, tx + tw + 2, ty + th + 2], fill=(0, 0, 0))
        pen.text((tx + 1 - left, ty + 1 - top), caption, fill=colour, font=font)
    return np.asarray(canvas)


@lru_cache(maxsize=8)
def _font(size: int):  # noqa: ANN202 - PIL font
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font (needs FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def annotated_frames(frames: Iterator[tuple[float, np.ndarray]], marks: Mapping[float, Overlay],
                     *, total: int = 0, on_progress: ProgressFn | None = None) -> Iterator[np.ndarray]:
    """Each ``(time, frame)`` with the overlay of the nearest keyframe within half a second drawn on it
    (a keyframe box describes its second: AVA labels the clip around the keyframe)."""
    stamps = np.array(sorted(marks), np.float64)
    for n, (t, frame) in enumerate(frames, start=1):
        if stamps.size:
            k = int(np.argmin(np.abs(stamps - t)))
            if abs(stamps[k] - t) <= 0.5 + 1e-9:
                frame = draw(frame, marks[float(stamps[k])])
        report(on_progress, n, total)
        yield frame


def even_size(frame: np.ndarray) -> np.ndarray:
    """Pad an odd-sized frame by one pixel (H.264 needs even sizes): the copy edge repeats the border."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def names_of(labelmap_names: Sequence[tuple[int, str]]) -> dict[int, str]:
    return {int(i): str(n) for i, n in labelmap_names}
