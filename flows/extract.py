"""extract flow: feature banks, one GPU task per video (logic: ``storage.stages.extract``).

``config``: a ExtractConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.extract import ExtractConfig
from storage.workspace import StageRef


@flow(name="extract", log_prints=True, task_runner=default_task_runner())
def extract_flow(
    config: Settings[ExtractConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    ingest: StageRef | None = None,
    detect: StageRef | None = None,
    finetune: StageRef | None = None,
) -> StageRef:
    """Feature banks of every video that has detections (one GPU-declared task per video)."""
    return run_stage_flow("extract", config, workspace, force, config_file=config_file,
                          ingest=ingest, detect=detect, finetune=finetune)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("extract")
