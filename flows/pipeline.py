"""The pipeline flow: every stage as one DAG, each a sub-flow fed by its upstream StageRefs.

    synth -> ingest -> detect ----------> extract -> train[head] ---------> evaluate[head]
                   \\-> finetune --------/           \\-> train[acar] -> acfb -> evaluate[acfb]

Data dependencies are the arguments: every stage gets the StageRefs it reads. Each stage returns
early when its identity (config hash + upstream keys + code version) is already complete in the
workspace, so re-running the pipeline after changing one stage's config recomputes exactly that
stage and what follows it (e.g. a new ``train`` setting: train + evaluate; never extract).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from prefect import flow
from pydantic import Field, model_validator

from flows.acfb import acfb_flow
from flows.detect import DetectStageConfig, detect_flow
from flows.evaluate import EvaluateConfig, evaluate_flow
from flows.extract import extract_flow
from flows.finetune import FinetuneStageConfig, finetune_flow
from flows.ingest import ingest_flow
from flows.runtime import default_task_runner
from flows.synth import dataset_files, synth_flow
from flows.train import train_flow
from flows.workspace import StageRef
from stad_core.config import StageConfig, build_config
from stad_core.extract import ExtractConfig
from stad_core.finetune import FinetuneConfig
from stad_core.ingest import IngestConfig
from stad_core.synth import SynthConfig, preset_config
from stad_core.train import TrainConfig

PipelineStage = Literal["synth", "ingest", "detect", "finetune", "extract", "train", "acfb", "evaluate"]
HeadVariant = Literal["linear", "acrn", "lfb_avg", "lfb_max", "lfb_nl", "acar"]

#: Pipeline head name -> the TrainConfig fields that pick it (on top of the ``train`` section).
HEAD_VARIANTS: dict[str, dict[str, Any]] = {
    "linear": {"head": "linear"},
    "acrn": {"head": "acrn"},
    "lfb_avg": {"head": "lfb", "fbo": "avg"},
    "lfb_max": {"head": "lfb", "fbo": "max"},
    "lfb_nl": {"head": "lfb", "fbo": "nl"},
    "acar": {"head": "acar"},
}


class PipelineConfig(StageConfig):
    """One section per stage (each that stage's own config model), plus which heads to train."""

    dataset: Literal["synth", "files"] = Field(
        "synth", description="synth: generate the synthetic dataset and ingest it; files: ingest's own paths"
    )
    synth: SynthConfig = SynthConfig()
    ingest: IngestConfig = IngestConfig()
    detect: DetectStageConfig = DetectStageConfig()
    finetune: FinetuneStageConfig = FinetuneStageConfig()
    extract: ExtractConfig = ExtractConfig()
    train: TrainConfig = TrainConfig()
    heads: tuple[HeadVariant, ...] = Field(("linear", "lfb_max", "acar"), description="heads trained on the banks")
    acfb: bool = Field(True, description="also train ACFB on the ACAR head's actor-context bank (needs acar)")
    evaluate: EvaluateConfig = EvaluateConfig()
    stop_after: PipelineStage = Field("evaluate", description="run the DAG up to and including this stage")

    @model_validator(mode="after")
    def _acfb_needs_acar(self) -> PipelineConfig:
        if self.acfb and "acar" not in self.heads:
            raise ValueError("acfb: true needs 'acar' in heads (ACFB's bank comes from the trained ACAR head)")
        if len(set(self.heads)) != len(self.heads):
            raise ValueError(f"heads repeat a name: {list(self.heads)}")
        return self


def head_config(base: TrainConfig, variant: str) -> TrainConfig:
    return base.model_copy(update=HEAD_VARIANTS[variant])


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


def demo_config(preset: str = "demo", **synth_values: Any) -> PipelineConfig:
    """The `stad demo` pipeline: sized to finish in minutes on two CPU cores (configs/pipeline.yaml
    holds the same settings; tests keep them equal).

    A tiny SlowFast (slow width 8, one block per stage: 288 channels) sees 8x2-frame clips (1.6 s at
    10 fps, the synthetic dataset's recommended clip) and is fine-tuned for one epoch on an even
    subset of the training keyframes; heads use small latent sizes and train for a few epochs.
    """
    return PipelineConfig(
        synth=preset_config(preset, synth_values or None),
        ingest=IngestConfig(verify_decode=False),
        finetune=FinetuneStageConfig(
            family="mmaction2", width=8, blocks=(1, 1, 1, 1), max_clips=96,
            train=FinetuneConfig(num_frames=8, stride=2, short_side=None, epochs=1, batch_size=8, lr=0.05,
                                 warmup_steps=4),
        ),
        extract=ExtractConfig(num_frames=8, stride=2, short_side=None, context_grid=8, batch_size=16,
                              num_workers=0, dtype="float16"),
        train=TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=1e-4, warmup_epochs=0.5, epochs=4,
                          batch_size=16, latent_dim=64, reduced_dim=64, relation_dim=64, norm_groups=16),
    )


@flow(name="pipeline", log_prints=True, task_runner=default_task_runner())
def pipeline_flow(
    config: PipelineConfig = PipelineConfig(),
    workspace: str = "workspace",
    force: bool = False,
    force_stages: Sequence[str] = (),
) -> dict[str, StageRef]:
    """Run the stages in dependency order; ``force`` redoes all, ``force_stages`` the named ones.

    Returned refs are keyed by stage, and ``train:<head>`` / ``evaluate:<head>`` per head.
    """

    def forced(stage: str) -> bool:
        return force or stage in force_stages

    order = list(PipelineStage.__args__)  # type: ignore[attr-defined]

    def wanted(stage: str) -> bool:
        return order.index(stage) <= order.index(config.stop_after)

    refs: dict[str, StageRef] = {}
    if config.dataset == "synth":
        refs["synth"] = synth_flow(config.synth, workspace, force=forced("synth"))
        if not wanted("ingest"):
            return refs
        ingest_cfg, ingest_up = ingest_config_for_synth(config.ingest, refs["synth"]), [refs["synth"]]
    else:
        ingest_cfg, ingest_up = config.ingest, []
    ingest = refs["ingest"] = ingest_flow(ingest_cfg, workspace, force=forced("ingest"), upstream=ingest_up)
    if not wanted("detect"):
        return refs
    detect = refs["detect"] = detect_flow(config.detect, workspace, force=forced("detect"), ingest=ingest)
    if not wanted("finetune"):
        return refs
    finetune = refs["finetune"] = finetune_flow(config.finetune, workspace, force=forced("finetune"), ingest=ingest)
    if not wanted("extract"):
        return refs
    extract = refs["extract"] = extract_flow(config.extract, workspace, force=forced("extract"), ingest=ingest,
                                             detect=detect, finetune=finetune)
    if not wanted("train"):
        return refs
    models: dict[str, StageRef] = {}
    for variant in config.heads:
        models[variant] = refs[f"train:{variant}"] = train_flow(
            head_config(config.train, variant), workspace, force=forced("train"), ingest=ingest, extract=extract)
    if config.acfb and wanted("acfb"):
        models["acfb"] = refs["acfb"] = acfb_flow(
            config.train.model_copy(update={"head": "acfb"}), workspace, force=forced("acfb"), ingest=ingest,
            extract=extract, acar=models["acar"])
    if not wanted("evaluate"):
        return refs
    for name, model in models.items():
        refs[f"evaluate:{name}"] = evaluate_flow(config.evaluate, workspace, force=forced("evaluate"), model=model,
                                                 ingest=ingest, extract=extract)
    return refs


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("pipeline")
