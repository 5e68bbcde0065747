"""temporal_extract flow: videos -> the fine-feature bank (one Prefect task per video) (logic: ``storage.stages.temporal_extract``).

``config``: a FineFeatureConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.temporal.features import FineFeatureConfig
from storage.workspace import StageRef


@flow(name="temporal_extract", log_prints=True, task_runner=default_task_runner())
def temporal_extract_flow(
    config: Settings[FineFeatureConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    temporal_ingest: StageRef | None = None,
) -> StageRef:
    """Videos -> the fine-feature bank (one Prefect task per video)."""
    return run_stage_flow("temporal_extract", config, workspace, force, config_file=config_file,
                          temporal_ingest=temporal_ingest)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("temporal_extract")
