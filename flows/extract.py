"""extract flow: feature banks, one GPU task per video (logic: ``storage.stages.extract``)."""

from __future__ import annotations

from prefect import flow

from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.extract import ExtractConfig
from storage.workspace import StageRef


@flow(name="extract", log_prints=True, task_runner=default_task_runner())
def extract_flow(config: ExtractConfig = ExtractConfig(), workspace: str = "workspace", force: bool = False,
                 ingest: StageRef | None = None, detect: StageRef | None = None,
                 finetune: StageRef | None = None) -> StageRef:
    """Feature banks of every video that has detections (one GPU-declared task per video)."""
    return run_stage_flow("extract", config, workspace, force, ingest=ingest, detect=detect, finetune=finetune)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("extract")
