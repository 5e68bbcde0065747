"""finetune flow: fine-tune and export the backbone (logic: ``storage.stages.finetune``)."""

from __future__ import annotations

from prefect import flow

from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.stage_configs import FinetuneStageConfig
from storage.workspace import StageRef


@flow(name="finetune", log_prints=True, task_runner=default_task_runner())
def finetune_flow(config: FinetuneStageConfig = FinetuneStageConfig(), workspace: str = "workspace",
                  force: bool = False, ingest: StageRef | None = None) -> StageRef:
    """Fine-tune the backbone on the train split's keyframes (GT boxes) and export it."""
    return run_stage_flow("finetune", config, workspace, force, ingest=ingest)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("finetune")
