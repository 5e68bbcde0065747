"""Synthetic dataset stage: ``SynthConfig`` -> videos + AVA annotations in the workspace.

Run alone: ``stad run synth -c configs/synth.yaml videos=4`` or ``python -m flows.synth ...``.
"""

from __future__ import annotations

from dataclasses import replace

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.runtime import default_task_runner, reuse_or_begin, stage_progress
from flows.workspace import StageRef, Workspace, local_path
from stad_core.errors import StadError
from stad_core.synth import SynthConfig, generate_dataset
from stad_core.synth.generate import check_target

STAGE = "synth"


@task(name="generate-dataset", cache_policy=NO_CACHE, persist_result=False)
def generate_task(config: SynthConfig, out_uri: str, force: bool = False) -> dict[str, int]:
    out = local_path(out_uri)
    try:
        # An identical dataset already there (e.g. the stage marker was lost) is kept as it is.
        identical = not force and check_target(out, config)
    except StadError:
        # The folder is named by this exact identity: anything else in it is a partial earlier attempt.
        identical = False
    summary = generate_dataset(config, out, force=not identical, on_progress=stage_progress(STAGE))
    return {"videos": summary.videos, "keyframes": summary.keyframes, "boxes": summary.boxes, "rows": summary.rows,
            "excluded": summary.excluded}


@flow(name="synth", log_prints=True, task_runner=default_task_runner())
def synth_flow(config: SynthConfig = SynthConfig(), workspace: str = "workspace", force: bool = False) -> StageRef:
    """Render the synthetic dataset described by ``config`` (deterministic: same config, same bytes)."""
    ws = Workspace(workspace)
    planned = ws.plan(STAGE, config)
    done = reuse_or_begin(ws, planned, force=force)
    if done is not None:
        return done
    counts = generate_task(config, planned.uri, force)
    return ws.commit(replace(planned, counts=counts))


def dataset_files(ref: StageRef) -> dict[str, str]:
    """Absolute URIs of the dataset parts inside a synth output (what ingest needs)."""
    return {
        "videos_dir": ref.path("videos"),
        "train_csv": ref.path("annotations", "train.csv"),
        "val_csv": ref.path("annotations", "val.csv"),
        "exclusions": ref.path("annotations", "exclusions.csv"),
        "labelmap": ref.path("annotations", "label_map.pbtxt"),
    }


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main(STAGE)
