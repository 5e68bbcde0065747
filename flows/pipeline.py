"""The pipeline flow: every stage as one DAG, each a sub-flow fed by its upstream StageRefs.

Data dependencies are the arguments: ``ingest`` gets synth's output paths and its StageRef, the
next stages will get ingest's StageRef, and so on. Each stage returns early when its identity
(config hash + upstream keys + code version) is already complete in the workspace, so re-running
the pipeline after changing one stage's config recomputes exactly that stage and what follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prefect import flow
from pydantic import Field

from flows.ingest import ingest_flow
from flows.runtime import default_task_runner
from flows.synth import dataset_files, synth_flow
from flows.workspace import StageRef
from stad_core.config import StageConfig, build_config
from stad_core.ingest import IngestConfig
from stad_core.synth import SynthConfig


class PipelineConfig(StageConfig):
    """One section per stage (each that stage's own config model)."""

    dataset: Literal["synth", "files"] = Field(
        "synth", description="synth: generate the synthetic dataset and ingest it; files: ingest's own paths"
    )
    synth: SynthConfig = SynthConfig()
    ingest: IngestConfig = IngestConfig()


def ingest_config_for_synth(base: IngestConfig, synth: StageRef) -> IngestConfig:
    """``base`` pointed at a synth output (annotation keyframes on the video's own clock)."""
    files = dataset_files(synth)
    values = base.model_dump()
    values.update(
        videos_dir=files["videos_dir"], train_csv=files["train_csv"], val_csv=files["val_csv"], test_csv=None,
        exclusions=[files["exclusions"]], labelmap=files["labelmap"], keyframes="annotations",
        keyframe_range=None, time_offset=0.0,
    )
    return build_config(IngestConfig, values, source="pipeline (ingest of synth)")


@flow(name="pipeline", log_prints=True, task_runner=default_task_runner())
def pipeline_flow(
    config: PipelineConfig = PipelineConfig(),
    workspace: str = "workspace",
    force: bool = False,
    force_stages: Sequence[str] = (),
) -> dict[str, StageRef]:
    """Run the stages in dependency order; ``force`` redoes all, ``force_stages`` the named ones."""

    def forced(stage: str) -> bool:
        return force or stage in force_stages

    refs: dict[str, StageRef] = {}
    if config.dataset == "synth":
        refs["synth"] = synth_flow(config.synth, workspace, force=forced("synth"))
        ingest_cfg, ingest_up = ingest_config_for_synth(config.ingest, refs["synth"]), [refs["synth"]]
    else:
        ingest_cfg, ingest_up = config.ingest, []
    refs["ingest"] = ingest_flow(ingest_cfg, workspace, force=forced("ingest"), upstream=ingest_up)
    # Next stages slot in here, each fed by the refs it depends on, e.g.
    #   refs["detect"] = detect_flow(config.detect, workspace, manifest=refs["ingest"], ...)
    #   refs["extract"] = extract_flow(config.extract, workspace, manifest=refs["ingest"], detections=refs["detect"])
    return refs


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("pipeline")
