"""temporal_synth: ``TemporalSynthConfig`` -> a synthetic Charades-layout dataset in the workspace
(``videos/*.mp4``, ``Charades_v1_{train,test}.csv``, ``Charades_v1_classes.txt``)."""

from __future__ import annotations

from stad_core.temporal.synth import CLASSES_TXT, TEST_CSV, TRAIN_CSV, VIDEOS_DIR, TemporalSynthConfig, write_dataset
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.progress import stage_progress
from storage.uri import local_path
from storage.workspace import StageRef, Workspace

NAME = "temporal_synth"


def prepare(ws: Workspace, config: TemporalSynthConfig, upstream: dict[str, StageRef]) -> StagePlan:
    return StagePlan(ws.plan(NAME, config), config, upstream)


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, TemporalSynthConfig)
    summary = write_dataset(config, local_path(plan.ref.uri), on_progress=stage_progress(NAME))
    return Finished({"videos": summary.videos, "activities": summary.activities})


def dataset_files(ref: StageRef) -> dict[str, str]:
    """URIs of the dataset parts inside a temporal_synth output (what temporal_ingest reads)."""
    return {"videos_dir": ref.path(VIDEOS_DIR), "train_csv": ref.path(TRAIN_CSV), "test_csv": ref.path(TEST_CSV),
            "classes": ref.path(CLASSES_TXT)}


STAGE = Stage(NAME, TemporalSynthConfig, "render the synthetic temporal-activity dataset (Charades layout)",
              upstream=(), gpu=False, prepare=prepare, finish=finish, default_config="configs/temporal_synth.yaml")
