"""The temporal-activity pipeline flow: the same ingest -> extract -> train -> evaluate DAG for the
temporal task kind (docs/temporal.md).

    temporal_synth -> temporal_ingest -> temporal_extract (fine bank) -> temporal_train[head] -> temporal_evaluate[head]

Each stage returns early when its identity is already complete, as in ``pipeline``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import flow

from flows.registry import Settings, resolve_config
from flows.runner import default_task_runner, inherit_runner
from flows.temporal_evaluate import temporal_evaluate_flow
from flows.temporal_extract import temporal_extract_flow
from flows.temporal_ingest import temporal_ingest_flow
from flows.temporal_synth import temporal_synth_flow
from flows.temporal_train import temporal_train_flow
from stad_core.temporal.configs import TemporalPipelineConfig
from storage.workspace import StageRef


@flow(name="temporal_pipeline", log_prints=True, task_runner=default_task_runner())
def temporal_pipeline_flow(
    config: Settings[TemporalPipelineConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    force_stages: Sequence[str] = (),
    config_file: str | None = None,
) -> dict[str, StageRef]:
    """Run the temporal DAG; refs keyed by stage, ``temporal_train:<head>`` / ``temporal_evaluate:<head>`` per head."""
    config = resolve_config("temporal_pipeline", config, config_file)

    def sub(stage_flow: Any, name: str, *args: Any, **kwargs: Any) -> StageRef:
        return inherit_runner(stage_flow)(*args, force=force or name in force_stages, **kwargs)

    refs: dict[str, StageRef] = {}
    synth = None
    if config.dataset == "synth":
        synth = refs["temporal_synth"] = sub(temporal_synth_flow, "temporal_synth", config.synth, workspace)
    ingest = refs["temporal_ingest"] = sub(temporal_ingest_flow, "temporal_ingest", config.ingest, workspace,
                                           temporal_synth=synth)
    extract = refs["temporal_extract"] = sub(temporal_extract_flow, "temporal_extract", config.extract, workspace,
                                             temporal_ingest=ingest)
    for head in config.heads:
        model = refs[f"temporal_train:{head}"] = sub(
            temporal_train_flow, "temporal_train", config.train.model_copy(update={"head": head}), workspace,
            temporal_ingest=ingest, temporal_extract=extract)
        refs[f"temporal_evaluate:{head}"] = sub(temporal_evaluate_flow, "temporal_evaluate", config.evaluate,
                                                workspace, temporal_train=model, temporal_ingest=ingest,
                                                temporal_extract=extract)
    return refs


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("temporal_pipeline")
