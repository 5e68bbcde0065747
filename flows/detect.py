"""detect flow: person boxes per keyframe (logic: ``storage.stages.detect``)."""

from __future__ import annotations

from prefect import flow

from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.stage_configs import DetectStageConfig
from storage.workspace import StageRef


@flow(name="detect", log_prints=True, task_runner=default_task_runner())
def detect_flow(config: DetectStageConfig = DetectStageConfig(), workspace: str = "workspace", force: bool = False,
                ingest: StageRef | None = None) -> StageRef:
    """Person boxes at every keyframe of the manifest's ``splits`` (one task per video)."""
    return run_stage_flow("detect", config, workspace, force, ingest=ingest)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("detect")
