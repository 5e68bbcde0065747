"""evaluate flow: score a trained head, publish artifacts (logic: ``storage.stages.evaluate``);
and ``reevaluate`` (the scheduled deployment): every trained head without an evaluation yet."""

from __future__ import annotations

from prefect import flow

from flows.artifacts import pct, publish_evaluation
from flows.registry import Settings, resolve_config
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.stage_configs import EvaluateConfig
from storage.stages.evaluate import MODEL_STAGES, read_summary
from storage.stages.extract import bank_uris
from storage.workspace import StageRef, Workspace


@flow(name="evaluate", log_prints=True, task_runner=default_task_runner())
def evaluate_flow(
    config: Settings[EvaluateConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    model: StageRef | None = None,
    ingest: StageRef | None = None,
    extract: StageRef | None = None,
) -> StageRef:
    """Score ``model`` (a train or acfb output; default the newest) on ``config.split``."""
    config = resolve_config("evaluate", config, config_file)
    ref = run_stage_flow("evaluate", config, workspace, force, model=model, ingest=ingest, extract=extract)
    if not ref.reused:
        summary = read_summary(ref)
        extract_ref = Workspace(workspace).find("extract", ref.upstream["extract"])
        publish_evaluation(summary, bank_uris(extract_ref)["long_term"], extract_ref.key, workspace)
        print(f"{summary['head']}: {config.split} frame-mAP {pct(summary['mAP'])} "
              + " ".join(f"{g} {pct(v)}" for g, v in summary["groups"].items()))
    return ref


@flow(name="reevaluate", log_prints=True, task_runner=default_task_runner())
def reevaluate_flow(
    config: Settings[EvaluateConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
) -> list[StageRef]:
    """Evaluate every complete train/acfb output that has no evaluation with ``config`` yet.

    New checkpoints (including heads trained on new banks, whose identity includes the bank's) get
    a history row and artifacts; evaluated ones are reused, so a run with nothing new is a no-op.
    """
    config = resolve_config("reevaluate", config, config_file)
    ws = Workspace(workspace)
    out = [evaluate_flow(config, workspace, force=force, model=model)
           for stage in MODEL_STAGES for model in ws.history(stage)
           if "ingest" in model.upstream and "extract" in model.upstream]
    print(f"reevaluate: {sum(not r.reused for r in out)} evaluated, {sum(r.reused for r in out)} already done")
    return out


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("evaluate")
