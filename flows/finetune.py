"""finetune flow: fine-tune and export the backbone (logic: ``storage.stages.finetune``).

``config``: a FinetuneStageConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.stage_configs import FinetuneStageConfig
from storage.workspace import StageRef


@flow(name="finetune", log_prints=True, task_runner=default_task_runner())
def finetune_flow(
    config: Settings[FinetuneStageConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    ingest: StageRef | None = None,
) -> StageRef:
    """Fine-tune the backbone on the train split's keyframes (GT boxes) and export it."""
    return run_stage_flow("finetune", config, workspace, force, config_file=config_file,
                          ingest=ingest)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("finetune")
