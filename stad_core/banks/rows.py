"""What a bank stores per video: :class:`ActorRows` (row banks) and :class:`ContextMaps` (context
banks), with the fixed dtypes of the non-feature columns and keyframe lookup."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Two timestamps closer than this are the same keyframe (pts jitter, float round-trips).
TIME_TOLERANCE = 1e-3
#: dtypes of the row columns fixed by the format (features take the spec's dtype).
COLUMN_DTYPES: dict[str, np.dtype] = {
    "boxes": np.dtype(np.float32),
    "scores": np.dtype(np.float32),
    "timestamps": np.dtype(np.float64),
    "person_ids": np.dtype(np.int64),
}


@dataclass(frozen=True)
class ActorRows:
    """Rows of one video (or one keyframe) of a long-term / actor-context bank.

    Shapes (R rows, D = spec.feature_dim):
        features   [R, D]  the bank's spec dtype (float16/float32)
        boxes      [R, 4]  float32, normalised xyxy in [0, 1]
        scores     [R]     float32 (detector score; 1.0 for ground truth)
        timestamps [R]     float64 keyframe seconds in the video's own timeline
        person_ids [R]     int64, -1 = unknown
        source     str     where the boxes came from ("gt", "detector:...", "proposals:...")
    """

    features: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    timestamps: np.ndarray
    person_ids: np.ndarray
    source: str = "unknown"

    @classmethod
    def empty(cls, feature_dim: int, dtype: str | np.dtype, source: str = "unknown") -> ActorRows:
        """A video with no actors (R = 0); ``dtype`` is the bank's spec dtype."""
        return cls(
            np.zeros((0, feature_dim), dtype),
            np.zeros((0, 4), COLUMN_DTYPES["boxes"]),
            np.zeros(0, COLUMN_DTYPES["scores"]),
            np.zeros(0, COLUMN_DTYPES["timestamps"]),
            np.zeros(0, COLUMN_DTYPES["person_ids"]),
            source,
        )

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def take(self, index: np.ndarray | slice) -> ActorRows:
        """Rows at ``index`` (same source)."""
        return ActorRows(
            self.features[index],
            self.boxes[index],
            self.scores[index],
            self.timestamps[index],
            self.person_ids[index],
            self.source,
        )


@dataclass(frozen=True)
class ContextMaps:
    """Pooled clip feature maps of one video, one per keyframe.

    Shapes: maps [K, C, h, w] (spec dtype), timestamps [K] float64 keyframe seconds.
    """

    maps: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return int(self.maps.shape[0])


def sort_rows(rows: ActorRows) -> ActorRows:
    """Rows in time order (stable: rows of one keyframe keep their order)."""
    order = np.argsort(np.asarray(rows.timestamps, np.float64), kind="stable")
    if np.all(order == np.arange(len(order))):
        return rows
    return rows.take(order)


def find_keyframe(timestamps: np.ndarray, t: float) -> int | None:
    """Index of the sorted ``timestamps`` [K] entry within TIME_TOLERANCE of ``t``, else None."""
    i = int(np.searchsorted(timestamps, t - TIME_TOLERANCE, side="left"))
    if i < len(timestamps) and abs(float(timestamps[i]) - t) <= TIME_TOLERANCE:
        return i
    return None
