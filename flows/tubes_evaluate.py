"""tubes_evaluate flow: f-mAP and v-mAP of a head trained on a tube dataset (logic:
``storage.stages.tubes_evaluate``).

``config``: a TubesEvaluateConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.tubes.config import TubesEvaluateConfig
from storage.workspace import StageRef


@flow(name="tubes_evaluate", log_prints=True, task_runner=default_task_runner())
def tubes_evaluate_flow(
    config: Settings[TubesEvaluateConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    model: StageRef | None = None,
    ingest: StageRef | None = None,
    extract: StageRef | None = None,
) -> StageRef:
    """Score ``model`` (default: the newest head trained on a tubes_ingest output) with f-mAP and v-mAP."""
    return run_stage_flow("tubes_evaluate", config, workspace, force, config_file=config_file,
                          model=model, ingest=ingest, extract=extract)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("tubes_evaluate")
