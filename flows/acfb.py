"""acfb flow: actor-context bank from an ACAR head, then the ACFB head (logic: ``storage.stages.acfb``).

``config``: a TrainConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.train import TrainConfig
from storage.workspace import StageRef


@flow(name="acfb", log_prints=True, task_runner=default_task_runner())
def acfb_flow(
    config: Settings[TrainConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    ingest: StageRef | None = None,
    extract: StageRef | None = None,
    acar: StageRef | None = None,
) -> StageRef:
    """Actor-context bank from the ACAR head of ``acar``, then the ACFB head trained on it."""
    return run_stage_flow("acfb", config, workspace, force, config_file=config_file,
                          ingest=ingest, extract=extract, acar=acar)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("acfb")
