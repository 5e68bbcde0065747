"""Configs of the temporal stages that have no computation module of their own."""

from __future__ import annotations

from pydantic import Field

from stad_core.config import StageConfig


class TemporalIngestConfig(StageConfig):
    """Where a Charades-layout dataset is (run after temporal_synth: its output, when these are unset)."""

    videos_dir: str | None = Field(None, description="folder of <id>.<ext> videos (Charades_v1_480/)")
    train_csv: str | None = Field(None, description="Charades_v1_train.csv")
    test_csv: str | None = Field(None, description="Charades_v1_test.csv")
    classes: str | None = Field(None, description="Charades_v1_classes.txt")
    video_ext: str = ".mp4"
    limit: int | None = Field(None, ge=1, description="keep the first N videos of each split (smoke runs)")


class TemporalEvaluateConfig(StageConfig):
    """Which split a trained temporal head is scored on (Charades_v1_localize)."""

    split: str = "test"
    frames_per_video: int = Field(25, ge=1, description="the official script's 25")


from typing import Literal  # noqa: E402

from stad_core.temporal.features import CPU_DEMO, FineFeatureConfig  # noqa: E402
from stad_core.temporal.synth import TemporalSynthConfig  # noqa: E402
from stad_core.temporal.train import HeadName, TemporalTrainConfig  # noqa: E402


class TemporalPipelineConfig(StageConfig):
    """The temporal DAG: temporal_synth (dataset=synth) -> temporal_ingest -> temporal_extract ->
    temporal_train[head] -> temporal_evaluate[head]."""

    dataset: Literal["synth", "files"] = "synth"
    synth: TemporalSynthConfig = Field(default_factory=TemporalSynthConfig)
    ingest: TemporalIngestConfig = Field(default_factory=TemporalIngestConfig)
    extract: FineFeatureConfig = Field(default_factory=FineFeatureConfig)
    train: TemporalTrainConfig = Field(default_factory=TemporalTrainConfig)
    heads: tuple[HeadName, ...] = ("coarse_fine", "fine_only")
    evaluate: TemporalEvaluateConfig = Field(default_factory=TemporalEvaluateConfig)


#: Dataset sizes of `stad demo --task temporal` / `stad synth --task temporal`.
TEMPORAL_PRESETS: dict[str, dict[str, int]] = {
    "demo": {"videos": 96, "frames": 256},
    "tiny": {"videos": 8, "frames": 64},
}


def temporal_demo_config(preset: str = "demo") -> TemporalPipelineConfig:
    """The demo's pipeline settings (configs/temporal_pipeline.yaml documents the same for ``demo``)."""
    from stad_core.errors import ConfigError

    if preset not in TEMPORAL_PRESETS:
        raise ConfigError(f"unknown temporal preset {preset!r} (choose from: {', '.join(TEMPORAL_PRESETS)})")
    tiny = preset == "tiny"
    train = TemporalTrainConfig(input_steps=16 if tiny else 64, samples=8 if tiny else 16, epochs=3 if tiny else 40)
    return TemporalPipelineConfig(synth=TemporalSynthConfig(**TEMPORAL_PRESETS[preset]), train=train,
                                  extract=FineFeatureConfig(**CPU_DEMO),
                                  heads=("coarse_fine", "fine_only") if tiny else
                                  ("coarse_fine", "coarse_grid", "coarse_uniform", "fine_only"))
