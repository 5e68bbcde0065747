"""tubes_extract flow: feature banks at a tube dataset's frame keyframes (logic: ``storage.stages.tubes_extract``).

``config``: an ExtractConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.extract import ExtractConfig
from storage.workspace import StageRef


@flow(name="tubes_extract", log_prints=True, task_runner=default_task_runner())
def tubes_extract_flow(
    config: Settings[ExtractConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    ingest: StageRef | None = None,
    detect: StageRef | None = None,
    finetune: StageRef | None = None,
) -> StageRef:
    """Banks for the keyframes of ``ingest`` (tubes_ingest) with the boxes of ``detect`` (tubes_detect)."""
    return run_stage_flow("tubes_extract", config, workspace, force, config_file=config_file,
                          ingest=ingest, detect=detect, finetune=finetune)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("tubes_extract")
