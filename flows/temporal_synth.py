"""temporal_synth flow: render the synthetic temporal-activity dataset (logic: ``storage.stages.temporal_synth``).

``config``: a TemporalSynthConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.temporal.synth import TemporalSynthConfig
from storage.workspace import StageRef


@flow(name="temporal_synth", log_prints=True, task_runner=default_task_runner())
def temporal_synth_flow(
    config: Settings[TemporalSynthConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
) -> StageRef:
    """Render the synthetic temporal-activity dataset."""
    return run_stage_flow("temporal_synth", config, workspace, force, config_file=config_file)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("temporal_synth")
