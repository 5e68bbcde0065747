"""train flow: a relation head on the banks (logic: ``storage.stages.train``).

``config``: a TrainConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.train import TrainConfig
from storage.workspace import StageRef


@flow(name="train", log_prints=True, task_runner=default_task_runner())
def train_flow(
    config: Settings[TrainConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    ingest: StageRef | None = None,
    extract: StageRef | None = None,
) -> StageRef:
    """Train one head on the banks of ``extract`` with the ground truth of ``ingest``."""
    return run_stage_flow("train", config, workspace, force, config_file=config_file,
                          ingest=ingest, extract=extract)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("train")
