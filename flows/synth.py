"""synth flow: render the synthetic dataset (logic: ``storage.stages.synth``).

``config``: a SynthConfig, or a partial mapping merged over ``config_file`` (a deployment's defaults)."""

from __future__ import annotations

from prefect import flow

from flows.registry import Settings
from flows.runner import default_task_runner
from flows.stage_flow import run_stage_flow
from stad_core.synth import SynthConfig
from storage.workspace import StageRef


@flow(name="synth", log_prints=True, task_runner=default_task_runner())
def synth_flow(
    config: Settings[SynthConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
) -> StageRef:
    """Render the synthetic dataset described by ``config`` (same config, same bytes)."""
    return run_stage_flow("synth", config, workspace, force, config_file=config_file)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("synth")
