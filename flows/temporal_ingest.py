"""temporal_ingest flow: Charades CSVs + videos -> the temporal manifest (logic: ``storage.stages.temporal_ingest``).

``config``: a TemporalIngestConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.temporal.configs import TemporalIngestConfig
from storage.workspace import StageRef


@flow(name="temporal_ingest", log_prints=True, task_runner=default_task_runner())
def temporal_ingest_flow(
    config: Settings[TemporalIngestConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    temporal_synth: StageRef | None = None,
) -> StageRef:
    """Charades CSVs + videos -> the temporal manifest."""
    return run_stage_flow("temporal_ingest", config, workspace, force, config_file=config_file,
                          temporal_synth=temporal_synth)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("temporal_ingest")
