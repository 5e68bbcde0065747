"""ingest flow: videos + AVA CSVs -> manifest (logic: ``storage.stages.ingest``).

``config``: a IngestConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.ingest import IngestConfig
from storage.workspace import StageRef


@flow(name="ingest", log_prints=True, task_runner=default_task_runner())
def ingest_flow(
    config: Settings[IngestConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    synth: StageRef | None = None,
) -> StageRef:
    """Validate the videos and annotations and write the manifest; ``synth``: ingest that output."""
    return run_stage_flow("ingest", config, workspace, force, config_file=config_file,
                          synth=synth)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("ingest")
