"""temporal_evaluate flow: Charades_v1_localize of a trained temporal head + submission file (logic: ``storage.stages.temporal_evaluate``).

``config``: a TemporalEvaluateConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.temporal.configs import TemporalEvaluateConfig
from storage.workspace import StageRef


@flow(name="temporal_evaluate", log_prints=True, task_runner=default_task_runner())
def temporal_evaluate_flow(
    config: Settings[TemporalEvaluateConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    temporal_train: StageRef | None = None,
    temporal_ingest: StageRef | None = None,
    temporal_extract: StageRef | None = None,
) -> StageRef:
    """Charades_v1_localize of a trained temporal head + submission file."""
    return run_stage_flow("temporal_evaluate", config, workspace, force, config_file=config_file,
                          temporal_train=temporal_train, temporal_ingest=temporal_ingest, temporal_extract=temporal_extract)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("temporal_evaluate")
