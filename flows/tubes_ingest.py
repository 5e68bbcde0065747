"""tubes_ingest flow: a tube dataset -> tube GT + per-frame CSVs + manifest (logic: ``storage.stages.tubes_ingest``).

``config``: a TubesIngestConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.tubes.config import TubesIngestConfig
from storage.workspace import StageRef


@flow(name="tubes_ingest", log_prints=True, task_runner=default_task_runner())
def tubes_ingest_flow(
    config: Settings[TubesIngestConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    synth: StageRef | None = None,
) -> StageRef:
    """Export the tubes (synthetic, or a MultiSports/UCF101-24/JHMDB pickle) in the ingest layout."""
    return run_stage_flow("tubes_ingest", config, workspace, force, config_file=config_file, synth=synth)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("tubes_ingest")
