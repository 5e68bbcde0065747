"""The tube pipeline flow: the detect -> extract -> train -> evaluate DAG on a tube dataset.

    synth -> tubes_ingest -> tubes_detect ---------> tubes_extract -> train[head] -> tubes_evaluate[head]
                         \\-> finetune --------------/

Keyframes are frames at the dataset's rate (``ingest.frame_stride``), so heads train per frame; the
shared stages (finetune, train) get the tubes_ingest output as their ``ingest`` upstream. Each stage
returns early when its identity is already complete, as in ``pipeline``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import flow

from flows.finetune import finetune_flow
from flows.registry import Settings, resolve_config
from flows.runner import default_task_runner, inherit_runner
from flows.synth import synth_flow
from flows.train import train_flow
from flows.tubes_detect import tubes_detect_flow
from flows.tubes_evaluate import tubes_evaluate_flow
from flows.tubes_extract import tubes_extract_flow
from flows.tubes_ingest import tubes_ingest_flow
from stad_core.heads.variants import variant_fields
from stad_core.tubes.config import TubesPipelineConfig
from storage.workspace import StageRef


@flow(name="tubes_pipeline", log_prints=True, task_runner=default_task_runner())
def tubes_pipeline_flow(
    config: Settings[TubesPipelineConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    force_stages: Sequence[str] = (),
    config_file: str | None = None,
) -> dict[str, StageRef]:
    """Run the tube DAG; refs keyed by stage, ``train:<head>`` and ``tubes_evaluate:<head>`` per head."""
    config = resolve_config("tubes_pipeline", config, config_file)

    def sub(stage_flow: Any, name: str, *args: Any, **kwargs: Any) -> StageRef:
        return inherit_runner(stage_flow)(*args, force=force or name in force_stages, **kwargs)

    refs: dict[str, StageRef] = {}
    synth = None
    if config.dataset == "synth":
        synth = refs["synth"] = sub(synth_flow, "synth", config.synth, workspace)
    ingest_cfg = config.ingest.model_copy(update={"source": config.dataset})
    ingest = refs["tubes_ingest"] = sub(tubes_ingest_flow, "tubes_ingest", ingest_cfg, workspace, synth=synth)
    detect = refs["tubes_detect"] = sub(tubes_detect_flow, "tubes_detect", config.detect, workspace, ingest=ingest)
    finetune = refs["finetune"] = sub(finetune_flow, "finetune", config.finetune, workspace, ingest=ingest)
    extract = refs["tubes_extract"] = sub(tubes_extract_flow, "tubes_extract", config.extract, workspace,
                                          ingest=ingest, detect=detect, finetune=finetune)
    for head in config.heads:
        model = refs[f"train:{head}"] = sub(train_flow, "train", config.train.model_copy(update=variant_fields(head)),
                                            workspace, ingest=ingest, extract=extract)
        refs[f"tubes_evaluate:{head}"] = sub(tubes_evaluate_flow, "tubes_evaluate", config.evaluate, workspace,
                                             model=model, ingest=ingest, extract=extract)
    return refs


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("tubes_pipeline")
