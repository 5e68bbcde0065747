"""Per-frame multi-label targets from activity intervals (one definition for training and scoring)."""

from __future__ import annotations

import numpy as np

from stad_core.temporal.annotations import TemporalVideo


def labels_at(video: TemporalVideo, times: np.ndarray, num_classes: int) -> np.ndarray:
    """bool ``[T, C]``: class c is on at second ``times[t]`` when some activity of c has
    ``start <= t <= end`` (both ends inclusive, as the Charades localize script tests it)."""
    times = np.asarray(times, np.float64)
    out = np.zeros((len(times), num_classes), bool)
    for a in video.activities:
        out[(a.start <= times) & (times <= a.end), a.label] = True
    return out


def step_times(num_steps: int, step_seconds: float) -> np.ndarray:
    """float64 ``[T]``: centre second of each feature step (step t covers ``[t, t+1) * step_seconds``)."""
    return (np.arange(num_steps, dtype=np.float64) + 0.5) * step_seconds
