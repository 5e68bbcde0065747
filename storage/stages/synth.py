"""synth: ``SynthConfig`` -> videos + AVA annotation files in the workspace (deterministic)."""

from __future__ import annotations

from stad_core.errors import StadError
from stad_core.synth import SynthConfig, check_target, generate_dataset
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.progress import stage_progress
from storage.uri import local_path
from storage.workspace import StageRef, Workspace

NAME = "synth"


def prepare(ws: Workspace, config: SynthConfig, upstream: dict[str, StageRef]) -> StagePlan:
    return StagePlan(ws.plan(NAME, config), config, upstream)


def finish(plan: StagePlan, device: str) -> Finished:
    out = local_path(plan.ref.uri)
    config = plan.config
    assert isinstance(config, SynthConfig)
    try:
        # An identical dataset already there (e.g. the stage record was lost) is kept as it is.
        identical = check_target(out, config)
    except StadError:
        # The folder is named by this exact identity: anything else in it is a partial earlier attempt.
        identical = False
    summary = generate_dataset(config, out, force=not identical, on_progress=stage_progress(NAME))
    return Finished({"videos": summary.videos, "keyframes": summary.keyframes, "boxes": summary.boxes,
                     "rows": summary.rows, "excluded": summary.excluded})


def dataset_files(ref: StageRef) -> dict[str, str]:
    """URIs of the dataset parts inside a synth output (what ingest reads)."""
    return {
        "videos_dir": ref.path("videos"),
        "train_csv": ref.path("annotations", "train.csv"),
        "val_csv": ref.path("annotations", "val.csv"),
        "exclusions": ref.path("annotations", "exclusions.csv"),
        "labelmap": ref.path("annotations", "label_map.pbtxt"),
    }


STAGE = Stage(NAME, SynthConfig, "render the synthetic dataset (videos + AVA annotations)", upstream=(), gpu=False,
              prepare=prepare, finish=finish, default_config="configs/synth.yaml")
