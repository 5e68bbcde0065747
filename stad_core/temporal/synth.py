"""A synthetic temporal-activity dataset where the Coarse-Fine claims can be checked on a CPU.

Grey videos (``size`` x ``size``, ``frames`` frames) with six classes of activity, each a small
bright square:

* ``move_right`` / ``move_left`` / ``move_down`` / ``move_up`` (long range): a square travels half
  the frame over 25-45 % of the video, but every frame it is displaced by independent jitter
  (``jitter`` of the frame size, far more than its drift over a short clip). The direction is
  visible only over many frames; start and end points are drawn so that the positions visited are
  distributed alike for both directions of an axis, so no single frame tells them apart.
* ``flicker`` / ``glow`` (short range, 6-15 % of the video): a square at a fixed place that is on
  every other frame (flicker) or on every frame (glow), at the same drawn brightness. Any one frame
  of a flicker looks like a glow or like nothing; only consecutive frames tell them apart.

Travellers never overlap each other; flicker/glow activities may overlap travellers and each other,
so labels are multi-label. Most of each video is empty background: the regions that matter are a
minority (what Grid Pool is for). Deterministic in ``seed`` (video i uses the stream (seed, i)).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from stad_core.config import StageConfig
from stad_core.progress import ProgressFn
from stad_core.temporal.annotations import Activity, TemporalVideo

CLASSES = ("move_right", "move_left", "move_down", "move_up", "flicker", "glow")
LONG_RANGE = (0, 1, 2, 3)
SHORT_RANGE = (4, 5)


class TemporalSynthConfig(StageConfig):
    """Everything that determines a synthetic temporal dataset."""

    videos: int = Field(48, ge=2, le=5000, description="number of videos (the last test_fraction are the test split)")
    test_fraction: float = Field(0.25, gt=0, lt=1)
    frames: int = Field(256, ge=32, le=4096, description="frames per video")
    fps: int = Field(8, ge=1, le=60)
    size: int = Field(32, ge=16, le=256, description="frame width = height in pixels (even)")
    square: int = Field(4, ge=2, le=16, description="side of an activity's square in pixels")
    jitter: float = Field(0.12, ge=0, le=0.5, description="per-frame position noise of travellers (frame units)")
    noise: float = Field(0.02, ge=0, le=0.2, description="per-frame pixel noise")
    seed: int = Field(0, ge=0)

    def split_of(self, index: int) -> str:
        return "test" if index >= self.videos - max(1, round(self.videos * self.test_fraction)) else "train"


@dataclass(frozen=True)
class SynthVideo:
    video: TemporalVideo
    split: str
    frames: np.ndarray  # uint8 [T, H, W, 3]


def video_id(index: int) -> str:
    return f"tsyn_{index:04d}"


def _intervals(rng: np.random.Generator, count: int, frames: int, lo: float, hi: float,
               disjoint: bool) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for _ in range(50 * count):
        if len(out) == count:
            break
        length = int(rng.uniform(lo, hi) * frames)
        start = int(rng.integers(0, frames - length))
        if disjoint and any(start < e and s < start + length for s, e in out):
            continue
        out.append((start, start + length))
    return sorted(out)


def render_video(config: TemporalSynthConfig, index: int) -> SynthVideo:
    rng = np.random.default_rng([config.seed, index])
    t, n, sq = config.frames, config.size, config.square
    base = 0.3 + 0.04 * rng.standard_normal((n, n))  # static texture
    frames = np.repeat(base[None], t, axis=0) + config.noise * rng.standard_normal((t, n, n))
    acts: list[Activity] = []
    span = n - sq

    def paint(f: int, x: float, y: float, level: float) -> None:
        cx, cy = int(round(np.clip(x, 0, 1) * span)), int(round(np.clip(y, 0, 1) * span))
        frames[f, cy:cy + sq, cx:cx + sq] = level

    for start, end in _intervals(rng, int(rng.integers(1, 3)), t, 0.25, 0.45, disjoint=True):
        label = int(rng.choice(LONG_RANGE))
        a = rng.uniform(0.05, 0.45)  # the path covers [a, a + 0.5]: same range for both directions
        across = rng.uniform(0.1, 0.9)
        level = rng.uniform(0.7, 1.0)
        for f in range(start, end):
            progress = (f - start) / max(1, end - start - 1)
            along = a + 0.5 * (progress if label in (0, 2) else 1 - progress) + config.jitter * rng.standard_normal()
            side = across + 0.5 * config.jitter * rng.standard_normal()
            x, y = (along, side) if label in (0, 1) else (side, along)
            paint(f, x, y, level)
        acts.append(Activity(label, start / config.fps, (end - 1) / config.fps))
    for start, end in _intervals(rng, int(rng.integers(1, 4)), t, 0.06, 0.15, disjoint=False):
        label = int(rng.choice(SHORT_RANGE))
        x, y, level = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.6, 1.0)
        phase = int(rng.integers(0, 2))
        for f in range(start, end):
            if label == 5 or (f + phase) % 2 == 0:
                paint(f, x, y, level)
        acts.append(Activity(label, start / config.fps, (end - 1) / config.fps))
    pixels = (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
    video = TemporalVideo(video_id(index), t / config.fps, tuple(sorted(acts, key=lambda a: (a.start, a.label))))
    return SynthVideo(video, config.split_of(index), np.repeat(pixels[..., None], 3, axis=-1))


def render_dataset(config: TemporalSynthConfig) -> Iterator[SynthVideo]:
    for i in range(config.videos):
        yield render_video(config, i)


@dataclass(frozen=True)
class DatasetSummary:
    videos: int
    activities: int


#: File names of a dataset folder (the Charades layout; see docs/temporal.md).
TRAIN_CSV, TEST_CSV, CLASSES_TXT, VIDEOS_DIR = "Charades_v1_train.csv", "Charades_v1_test.csv", "Charades_v1_classes.txt", "videos"


def write_dataset(config: TemporalSynthConfig, out: str | Path, on_progress: ProgressFn | None = None) -> DatasetSummary:
    """Render the dataset into ``out`` in the Charades layout: ``videos/<id>.mp4``,
    ``Charades_v1_train.csv``, ``Charades_v1_test.csv``, ``Charades_v1_classes.txt``, ``config.json``."""
    from stad_core.atomic import atomic_write_text
    from stad_core.progress import report
    from stad_core.temporal.annotations import write_charades_classes, write_charades_csv
    from stad_core.video import encode_video

    out = Path(out)
    (out / VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[TemporalVideo]] = {"train": [], "test": []}
    x264 = {"crf": "4", "preset": "veryfast", "bf": "0", "threads": "1"}
    for i, item in enumerate(render_dataset(config)):
        path = out / VIDEOS_DIR / f"{item.video.video_id}.mp4"
        encode_video(path, item.frames, fps=config.fps, options=x264)
        splits[item.split].append(item.video)
        report(on_progress, i + 1, config.videos)
    write_charades_csv(out / TRAIN_CSV, splits["train"])
    write_charades_csv(out / TEST_CSV, splits["test"])
    write_charades_classes(out / CLASSES_TXT, CLASSES)
    atomic_write_text(out / "config.json", config.model_dump_json(indent=1))
    return DatasetSummary(config.videos, sum(len(v.activities) for s in splits.values() for v in s))
