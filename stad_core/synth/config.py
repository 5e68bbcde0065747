"""Settings of the synthetic dataset generator (``stad synth``) and its named presets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from stad_core.config import StageConfig, build_config
from stad_core.errors import ConfigError

PresetName = Literal["demo", "tiny"]

# Overrides applied on top of the class defaults (``demo`` *is* the defaults). ``tiny`` is for tests:
# two short videos that still contain every class group (a key pickup and its return, one alarm).
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {},
    "tiny": {"videos": 2, "seconds": 24, "actors_min": 3, "actors_max": 4, "alarm_fraction": 1.0, "val_every": 4},
}


class SynthConfig(StageConfig):
    """Everything that determines a synthetic dataset; equal configs give identical datasets.

    World geometry is defined on a 160x128 reference canvas and scaled to ``width`` x ``height``.
    """

    videos: int = Field(48, ge=1, le=1000, description="number of videos")
    seconds: int = Field(60, ge=12, le=900, description="length of each video in seconds")
    seed: int = Field(0, ge=0, description="master seed; video i uses the stream (seed, i)")
    fps: int = Field(10, ge=4, le=30, description="frames per second")
    width: int = Field(160, ge=64, le=640, description="frame width in pixels (even)")
    height: int = Field(128, ge=48, le=480, description="frame height in pixels (even)")
    actors_min: int = Field(4, ge=2, le=8, description="fewest actors per video (key pickers included)")
    actors_max: int = Field(6, ge=2, le=8, description="most actors per video")
    keys_per_video: int = Field(1, ge=0, le=3, description="key pickups per video (long-term, identity)")
    alarm_fraction: float = Field(0.5, ge=0.0, le=1.0, description="share of videos opening with an alarm")
    val_every: int = Field(2, ge=2, le=100, description="video i is validation iff i % val_every == val_every-1")
    keyframe_margin: int = Field(2, ge=1, le=5, description="no keyframes in the first/last this many seconds")
    crf: int = Field(16, ge=0, le=51, description="x264 constant rate factor (lower = closer to the render)")
    gop: int = Field(10, ge=1, le=300, description="frames between x264 keyframes (small = cheap seeking)")

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        if self.actors_min > self.actors_max:
            raise ValueError(f"actors_min ({self.actors_min}) > actors_max ({self.actors_max})")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even for H.264 (got {self.width}x{self.height})")
        if self.seconds <= 2 * self.keyframe_margin:
            raise ValueError(f"seconds ({self.seconds}) leaves no keyframes with keyframe_margin {self.keyframe_margin}")
        return self

    @property
    def keyframe_seconds(self) -> range:
        """Annotated keyframe seconds: ``keyframe_margin .. seconds - keyframe_margin`` inclusive."""
        return range(self.keyframe_margin, self.seconds - self.keyframe_margin + 1)

    def is_val(self, video_index: int) -> bool:
        """Split rule: every ``val_every``-th video is validation; with too few videos, the last one."""
        if self.videos < self.val_every:
            return self.videos > 1 and video_index == self.videos - 1
        return video_index % self.val_every == self.val_every - 1

    def has_alarm(self, video_index: int) -> bool:
        """Whether video ``i`` opens with an alarm: evenly spread, interleaved with the split pattern."""
        if self.alarm_fraction <= 0.0:
            return False
        position = ((video_index + video_index // self.val_every) * self.alarm_fraction) % 1.0
        return position < self.alarm_fraction - 1e-9 or self.alarm_fraction >= 1.0

    def video_id(self, video_index: int) -> str:
        return f"synth_{video_index:04d}"


def preset_config(preset: str = "demo", values: dict[str, Any] | None = None) -> SynthConfig:
    """``SynthConfig`` from a named preset plus explicit values (values win)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown synth preset {preset!r} (choose from: {', '.join(PRESETS)})")
    merged = {**PRESETS[preset], **(values or {})}
    return build_config(SynthConfig, merged, source=f"preset {preset!r}")
