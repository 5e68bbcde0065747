"""Flows of the stage registry: every stage of ``storage.stages`` plus the two flows that compose
stages (``pipeline``, ``reevaluate``). The CLI (`stad run`, `python -m flows.<stage>`),
`stad serve` and prefect.yaml read this.

A stage's flow is ``flows.<stage>:<stage>_flow``; its config model, summary, default config file and
GPU need come from the stage's registry entry. Imports are lazy: listing the names is cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import Field

from stad_core.config import StageConfig, load_config
from stad_core.errors import StadError
from storage.stages import STAGE_MODULES, get_stage


@dataclass(frozen=True)
class FlowEntry:
    name: str
    flow_path: str  # "module:attribute" of the Prefect flow
    config_path: str | None = None  # "module:attribute" of its config model (None: the stage's)
    summary: str | None = None  # None: the stage's
    default_config: str | None = None
    gpu: bool | None = None

    def load_flow(self) -> Any:
        return _load(self.flow_path)

    def load_config_class(self) -> type[Any]:
        return _load(self.config_path) if self.config_path else get_stage(self.name).config

    def describe(self) -> str:
        return self.summary or get_stage(self.name).summary

    def config_file(self) -> str | None:
        return self.default_config if self.config_path else get_stage(self.name).default_config

    def needs_gpu(self) -> bool:
        return bool(self.gpu) if self.config_path else get_stage(self.name).gpu


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


FLOWS: dict[str, FlowEntry] = {
    **{name: FlowEntry(name, f"flows.{name}:{name}_flow") for name in STAGE_MODULES},
    "reevaluate": FlowEntry("reevaluate", "flows.evaluate:reevaluate_flow", "stad_core.stage_configs:EvaluateConfig",
                            "evaluate every trained head without an evaluation yet (scheduled)",
                            "configs/evaluate.yaml", gpu=True),
    "pipeline": FlowEntry("pipeline", "flows.pipeline:pipeline_flow", "stad_core.stage_configs:PipelineConfig",
                          "all stages as one DAG (synth -> ingest -> detect/finetune -> extract -> train -> acfb -> "
                          "evaluate)", "configs/pipeline.yaml", gpu=True),
    "infer": FlowEntry("infer", "flows.infer:infer_flow", "storage.stages.infer:InferConfig",
                       "a model bundle (`stad export`) on new videos -> AVA CSV, tracks JSON, annotated MP4",
                       "configs/infer.yaml", gpu=False),
    "tubes_pipeline": FlowEntry("tubes_pipeline", "flows.tubes_pipeline:tubes_pipeline_flow",
                                "stad_core.tubes.config:TubesPipelineConfig",
                                "the tube DAG (synth -> tubes_ingest -> tubes_detect/finetune -> tubes_extract -> "
                                "train -> tubes_evaluate: f-mAP, v-mAP)", "configs/tubes_pipeline.yaml", gpu=True),
    "temporal_pipeline": FlowEntry("temporal_pipeline", "flows.temporal_pipeline:temporal_pipeline_flow",
                                   "stad_core.temporal.configs:TemporalPipelineConfig",
                                   "the temporal-activity DAG (temporal_synth -> temporal_ingest -> temporal_extract "
                                   "-> temporal_train -> temporal_evaluate: Charades localize mAP)",
                                   "configs/temporal_pipeline.yaml", gpu=True),
}

C = TypeVar("C")
#: A flow's ``config`` parameter: a partial mapping (a deployment run's ``-p config='{...}'``, merged
#: by ``resolve_config``) or the model itself. Left to right: a dict must stay a dict, not be
#: validated into the model with the class defaults (which would replace the deployment's settings).
Settings = Annotated[dict[str, Any] | C | None, Field(union_mode="left_to_right")]

# Cron schedule of the reevaluate deployment unless `stad serve --cron reevaluate=...` says otherwise.
REEVALUATE_CRON = "0 * * * *"


def get_flow(name: str) -> FlowEntry:
    if name in FLOWS:
        return FLOWS[name]
    raise StadError(f"unknown stage {name!r} (available: {', '.join(FLOWS)})")


def load_stage_config(name: str, path: str | Path | None = None, overrides: Sequence[str] = (),
                      values: Mapping[str, Any] | None = None) -> Any:
    """The config model of ``name``: its class defaults < the YAML file < ``values`` (a partial,
    nested mapping) < ``key=value`` overrides. Errors name the layer that is wrong."""
    return load_config(get_flow(name).load_config_class(), path, overrides, values=values)


def resolve_config(name: str, config: Any, config_file: str | None) -> Any:
    """What a flow's ``config`` parameter means: a model instance as it is; otherwise a partial
    mapping (a deployment run's ``-p config='{...}'``) merged over ``config_file`` (the deployment's
    default settings) and the class defaults, validated before any stage work starts."""
    if isinstance(config, StageConfig):
        return config
    return load_stage_config(name, config_file, values=config or {})
