"""ingest flow: videos + AVA CSVs -> manifest (logic: ``storage.stages.ingest``)."""

from __future__ import annotations

from prefect import flow

from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.ingest import IngestConfig
from storage.workspace import StageRef


@flow(name="ingest", log_prints=True, task_runner=default_task_runner())
def ingest_flow(config: IngestConfig = IngestConfig(), workspace: str = "workspace", force: bool = False,
                synth: StageRef | None = None) -> StageRef:
    """Validate the videos and annotations and write the manifest; ``synth``: ingest that output."""
    return run_stage_flow("ingest", config, workspace, force, synth=synth)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("ingest")
