"""temporal_train flow: train a temporal head on the fine bank (logic: ``storage.stages.temporal_train``).

``config``: a TemporalTrainConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.temporal.train import TemporalTrainConfig
from storage.workspace import StageRef


@flow(name="temporal_train", log_prints=True, task_runner=default_task_runner())
def temporal_train_flow(
    config: Settings[TemporalTrainConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    temporal_ingest: StageRef | None = None,
    temporal_extract: StageRef | None = None,
) -> StageRef:
    """Train a temporal head on the fine bank."""
    return run_stage_flow("temporal_train", config, workspace, force, config_file=config_file,
                          temporal_ingest=temporal_ingest, temporal_extract=temporal_extract)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("temporal_train")
