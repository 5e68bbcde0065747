"""detect flow: person boxes per keyframe (logic: ``storage.stages.detect``).

``config``: a DetectStageConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.stage_configs import DetectStageConfig
from storage.workspace import StageRef


@flow(name="detect", log_prints=True, task_runner=default_task_runner())
def detect_flow(
    config: Settings[DetectStageConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    ingest: StageRef | None = None,
) -> StageRef:
    """Person boxes at every keyframe of the manifest's ``splits`` (one task per video)."""
    return run_stage_flow("detect", config, workspace, force, config_file=config_file,
                          ingest=ingest)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("detect")
