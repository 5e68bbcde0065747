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
}


def get_stage(name: str) -> Stage:
    """The registry entry of ``name`` (a clear error listing the stages for a typo)."""
    if name not in STAGE_MODULES:
        raise StadError(f"unknown stage {name!r} (available: {', '.join(STAGE_MODULES)})")
    return importlib.import_module(STAGE_MODULES[name]).STAGE


__all__ = ["STAGE_MODULES", "Finished", "Stage", "StagePlan", "VideoWork", "get_stage"]
