"""tubes_detect flow: person boxes at every frame keyframe of a tube dataset (logic:
``storage.stages.tubes_detect``).

``config``: a DetectStageConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.stage_configs import DetectStageConfig
from storage.workspace import StageRef


@flow(name="tubes_detect", log_prints=True, task_runner=default_task_runner())
def tubes_detect_flow(
    config: Settings[DetectStageConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    ingest: StageRef | None = None,
) -> StageRef:
    """Boxes at the keyframes of ``ingest`` (a tubes_ingest output; default the newest)."""
    return run_stage_flow("tubes_detect", config, workspace, force, config_file=config_file, ingest=ingest)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("tubes_detect")
