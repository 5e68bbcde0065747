"""The stage registry: stage name -> ``Stage`` (config model, core functions, upstream stages, GPU).

The CLI (`stad run`), the Prefect flows and deployments, the pipeline and the benchmarks all read
it. Adding a stage is one module here with a ``STAGE`` entry, one line below, and a few-line flow
in ``flows/``. Modules are imported on first use, so listing stages stays cheap.
"""

from __future__ import annotations

import importlib

from stad_core.errors import StadError
from storage.stages.base import Finished, Stage, StagePlan, VideoWork

#: Stage name -> module under storage.stages holding its ``STAGE``, in pipeline order.
STAGE_MODULES: dict[str, str] = {
    "synth": "storage.stages.synth",
    "ingest": "storage.stages.ingest",
    "detect": "storage.stages.detect",
    "finetune": "storage.stages.finetune",
    "extract": "storage.stages.extract",
    "train": "storage.stages.train",
    "acfb": "storage.stages.acfb",
    "evaluate": "storage.stages.evaluate",
    "tubes_ingest": "storage.stages.tubes_ingest",  # action tubes: dataset -> ingest layout (docs/tubes.md)
    "tubes_detect": "storage.stages.tubes_detect",  # action tubes: boxes at every frame keyframe
    "tubes_extract": "storage.stages.tubes_extract",  # action tubes: extract at fractional keyframe times
    "tubes_evaluate": "storage.stages.tubes_evaluate",  # action tubes: f-mAP / v-mAP of a trained head
    "temporal_synth": "storage.stages.temporal_synth",  # temporal activity (docs/temporal.md): synthetic data
    "temporal_ingest": "storage.stages.temporal_ingest",  # temporal activity: Charades CSVs -> manifest
    "temporal_extract": "storage.stages.temporal_extract",  # temporal activity: fine-feature bank
    "temporal_train": "storage.stages.temporal_train",  # temporal activity: Coarse-Fine head / baselines
    "temporal_evaluate": "storage.stages.temporal_evaluate",  # temporal activity: Charades_v1_localize
}


def get_stage(name: str) -> Stage:
    """The registry entry of ``name`` (a clear error listing the stages for a typo)."""
    if name not in STAGE_MODULES:
        raise StadError(f"unknown stage {name!r} (available: {', '.join(STAGE_MODULES)})")
    return importlib.import_module(STAGE_MODULES[name]).STAGE


__all__ = ["STAGE_MODULES", "Finished", "Stage", "StagePlan", "VideoWork", "get_stage"]
