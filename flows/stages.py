"""The registry of stage flows: name -> flow, config class, default config file, GPU need.

Adding a stage (detect, extract, train, acfb, evaluate) is one entry here plus its flow module;
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
        StageSpec("pipeline", "flows.pipeline:pipeline_flow", "flows.pipeline:PipelineConfig",
                  "all stages as one DAG (synth -> ingest -> ...)", "configs/pipeline.yaml"),
    )
}

# Stages of the design whose flows are not in this build yet: named in errors instead of "unknown".
PLANNED = ("detect", "finetune", "extract", "train", "acfb", "evaluate")


def get_stage(name: str) -> StageSpec:
    if name in STAGES:
        return STAGES[name]
    if name in PLANNED:
        raise StadError(f"stage {name!r} has no flow in this build yet (available: {', '.join(STAGES)})")
    raise StadError(f"unknown stage {name!r} (available: {', '.join(STAGES)})")
