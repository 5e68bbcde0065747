"""The registry of stage flows: name -> flow, config class, default config file, GPU need.

Adding a stage is one entry here plus its flow module;
the CLI (`stad run`, `python -m flows.<stage>`), `stad serve` and prefect.yaml pick it up.
Imports are lazy so listing stages does not import Prefect or torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from stad_core.errors import StadError


@dataclass(frozen=True)
class StageSpec:
    name: str
    flow_path: str  # "module:attribute" of the Prefect flow
    config_path: str  # "module:attribute" of the stage's StageConfig subclass
    summary: str
    default_config: str | None = None  # relative to the working directory (configs/<stage>.yaml)
    gpu: bool = False  # has GPU tasks (the pipeline: any of its stages does)

    def load_flow(self) -> Any:
        return _load(self.flow_path)

    def load_config_class(self) -> type[Any]:
        return _load(self.config_path)


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec("synth", "flows.synth:synth_flow", "stad_core.synth:SynthConfig",
                  "render the synthetic dataset (videos + AVA annotations)", "configs/synth.yaml"),
        StageSpec("ingest", "flows.ingest:ingest_flow", "stad_core.ingest:IngestConfig",
                  "videos + AVA CSVs -> manifest.parquet + rejects.parquet", "configs/ingest.yaml"),
        StageSpec("detect", "flows.detect:detect_flow", "flows.detect:DetectStageConfig",
                  "person boxes per keyframe (ground truth, proposals or a detector) -> detections.parquet",
                  "configs/detect.yaml", gpu=True),
        StageSpec("finetune", "flows.finetune:finetune_flow", "flows.finetune:FinetuneStageConfig",
                  "fine-tune the video backbone (and optionally a person detector) on the train split",
                  "configs/finetune.yaml", gpu=True),
        StageSpec("extract", "flows.extract:extract_flow", "stad_core.extract:ExtractConfig",
                  "videos + detections + backbone -> long-term and context feature banks (zarr)",
                  "configs/extract.yaml", gpu=True),
        StageSpec("train", "flows.train:train_flow", "stad_core.train:TrainConfig",
                  "train a relation head on the banks -> checkpoint + metrics", "configs/train.yaml", gpu=True),
        StageSpec("acfb", "flows.acfb:acfb_flow", "stad_core.train:TrainConfig",
                  "ACAR head -> actor-context bank -> train the ACFB head", "configs/acfb.yaml", gpu=True),
        StageSpec("evaluate", "flows.evaluate:evaluate_flow", "flows.evaluate:EvaluateConfig",
                  "score a trained head: AVA CSV, frame-mAP report, history row, Prefect artifacts",
                  "configs/evaluate.yaml", gpu=True),
        StageSpec("reevaluate", "flows.evaluate:reevaluate_flow", "flows.evaluate:EvaluateConfig",
                  "evaluate every trained head without an evaluation yet (scheduled)", "configs/evaluate.yaml"),
        StageSpec("pipeline", "flows.pipeline:pipeline_flow", "flows.pipeline:PipelineConfig",
                  "all stages as one DAG (synth -> ingest -> detect/finetune -> extract -> train -> acfb -> evaluate)",
                  "configs/pipeline.yaml", gpu=True),
    )
}

# Cron schedule of the reevaluate deployment unless `stad serve --cron reevaluate=...` says otherwise.
REEVALUATE_CRON = "0 * * * *"


def get_stage(name: str) -> StageSpec:
    if name in STAGES:
        return STAGES[name]
    raise StadError(f"unknown stage {name!r} (available: {', '.join(STAGES)})")
