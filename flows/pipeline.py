"""The pipeline flow: every stage as one DAG, each a sub-flow fed by its upstream StageRefs.

    synth -> ingest -> detect ----------> extract -> train[head] ---------> evaluate[head]
                   \\-> finetune --------/           \\-> train[acar] -> acfb -> evaluate[acfb]

Data dependencies are the arguments. Each stage returns early when its identity (config hash +
upstream keys + code version) is already complete in the workspace, so re-running the pipeline
after changing one stage's config recomputes exactly that stage and what follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import flow

from flows.acfb import acfb_flow
from flows.detect import detect_flow
from flows.evaluate import evaluate_flow
from flows.extract import extract_flow
from flows.finetune import finetune_flow
from flows.ingest import ingest_flow
from flows.registry import Settings, resolve_config
from flows.runner import default_task_runner, inherit_runner
from flows.synth import synth_flow
from flows.train import train_flow
from stad_core.heads.variants import variant_fields
from stad_core.stage_configs import PipelineConfig
from storage.workspace import StageRef


@flow(name="pipeline", log_prints=True, task_runner=default_task_runner())
def pipeline_flow(
    config: Settings[PipelineConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    force_stages: Sequence[str] = (),
    config_file: str | None = None,
) -> dict[str, StageRef]:
    """Run the stages in dependency order; ``force`` redoes all, ``force_stages`` the named ones.

    ``config``: a PipelineConfig, or a partial mapping (``{"synth": {"videos": 8}}``) merged section
    by section over ``config_file`` (a deployment's defaults). Returned refs are keyed by stage, and
    ``train:<head>`` / ``evaluate:<head>`` per head.
    """
    config = resolve_config("pipeline", config, config_file)

    def forced(stage: str) -> bool:
        return force or stage in force_stages

    def sub(stage_flow: Any, *args: Any, **kwargs: Any) -> StageRef:
        return inherit_runner(stage_flow)(*args, **kwargs)  # on the pipeline's runner (threads or Dask)

    refs: dict[str, StageRef] = {}
    synth = None
    if config.dataset == "synth":
        synth = refs["synth"] = sub(synth_flow, config.synth, workspace, force=forced("synth"))
    if not config.wants("ingest"):
        return refs
    ingest = refs["ingest"] = sub(ingest_flow, config.ingest, workspace, force=forced("ingest"), synth=synth)
    if not config.wants("detect"):
        return refs
    detect = refs["detect"] = sub(detect_flow, config.detect, workspace, force=forced("detect"), ingest=ingest)
    if not config.wants("finetune"):
        return refs
    finetune = refs["finetune"] = sub(finetune_flow, config.finetune, workspace, force=forced("finetune"),
                                      ingest=ingest)
    if not config.wants("extract"):
        return refs
    extract = refs["extract"] = sub(extract_flow, config.extract, workspace, force=forced("extract"),
                                    ingest=ingest, detect=detect, finetune=finetune)
    if not config.wants("train"):
        return refs
    models: dict[str, StageRef] = {}
    for variant in config.heads:
        models[variant] = refs[f"train:{variant}"] = sub(
            train_flow, config.train.model_copy(update=variant_fields(variant)), workspace, force=forced("train"),
            ingest=ingest, extract=extract)
    if config.acfb and config.wants("acfb"):
        models["acfb"] = refs["acfb"] = sub(
            acfb_flow, config.train.model_copy(update={"head": "acfb"}), workspace, force=forced("acfb"),
            ingest=ingest, extract=extract, acar=models["acar"])
    if not config.wants("evaluate"):
        return refs
    for name, model in models.items():
        refs[f"evaluate:{name}"] = sub(evaluate_flow, config.evaluate, workspace, force=forced("evaluate"),
                                       model=model, ingest=ingest, extract=extract)
    return refs


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("pipeline")
