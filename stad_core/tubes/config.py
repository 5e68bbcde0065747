"""Settings of the tube stages (``tubes_ingest``, ``tubes_evaluate``) and of the ``tubes_pipeline`` flow."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stad_core.config import StageConfig
from stad_core.extract import ExtractConfig
from stad_core.stage_configs import DetectStageConfig, FinetuneStageConfig
from stad_core.synth import SynthConfig
from stad_core.train import TrainConfig


class TubesIngestConfig(StageConfig):
    """A tube dataset as stad's ingest layout: per-frame AVA-style CSVs + manifest + the tube GT pickle.

    ``source=synth`` exports the workspace's synthetic dataset (exact tubes); ``source=files`` reads a
    MultiSports / UCF101-24 / JHMDB ground-truth pickle and a videos folder searched recursively, where
    video ``sport/v_x_c001`` is the file ``v_x_c001.<ext>`` (the datasets' own layout).
    """

    source: Literal["synth", "files"] = "synth"
    groundtruth: str | None = None  # files: the ground-truth tube pickle
    videos_dir: str | None = None  # files: the videos
    fps: float | None = None  # files: frame rate of the annotations (None: each video's own)
    split: int = Field(1, ge=1, description="which train/test list of the pickle (1-based)")
    frame_stride: int = Field(1, ge=1, description="every n-th frame becomes a keyframe (1: the dataset frame rate)")
    margin_frames: int = Field(0, ge=0, description="no keyframes in the first/last this many frames")
    min_frames: int = Field(2, ge=1, description="synth: shortest exported tube")
    verify_decode: bool = False


class TubesEvaluateConfig(StageConfig):
    """Scoring a trained head on a tube dataset: per-frame detections, linked tubes, f-mAP and v-mAP."""

    split: Literal["val", "test"] = "val"
    preset: Literal["multisports", "act"] = "multisports"
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="frame detections below it are dropped")
    frame_iou: float = 0.5
    link_iou: float = 0.5
    link_min_length: int = Field(15, ge=1, description="shortest linked tube kept, in frames")
    link_top_k: int = 10
    plots: bool = True


class TubesPipelineConfig(StageConfig):
    """The tube DAG: synth (or files) -> tubes_ingest -> tubes_detect + finetune -> tubes_extract ->
    train[head] -> tubes_evaluate[head]; one section per stage (each that stage's own config model)."""

    dataset: Literal["synth", "files"] = "synth"
    synth: SynthConfig = SynthConfig()
    ingest: TubesIngestConfig = TubesIngestConfig()
    detect: DetectStageConfig = DetectStageConfig(source="groundtruth")
    finetune: FinetuneStageConfig = FinetuneStageConfig()
    extract: ExtractConfig = ExtractConfig()
    train: TrainConfig = TrainConfig()
    heads: tuple[str, ...] = Field(("linear", "lfb_max"), description="head variants trained on the banks")
    evaluate: TubesEvaluateConfig = TubesEvaluateConfig()
