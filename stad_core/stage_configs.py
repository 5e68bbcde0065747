"""Config models of the stages that span several stad_core packages, and of the pipeline.

The other stages' configs live with their computation (``IngestConfig`` in ``stad_core.ingest``,
``ExtractConfig`` in ``stad_core.extract``, ``TrainConfig`` in ``stad_core.train``, ``SynthConfig``
in ``stad_core.synth``). YAML files in ``configs/`` are flat instances of these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from stad_core.config import StageConfig
from stad_core.detection import DetectConfig, DetectorTrainConfig
from stad_core.extract import ExtractConfig
from stad_core.finetune import FinetuneConfig
from stad_core.heads.variants import HeadVariant
from stad_core.ingest import IngestConfig
from stad_core.models.backbones import BackboneName
from stad_core.synth import SynthConfig, preset_config
from stad_core.train import TrainConfig


class DetectStageConfig(StageConfig):
    """Where the person boxes of every keyframe come from."""

    source: Literal["groundtruth", "proposals", "detector"] = Field(
        "groundtruth", description="groundtruth (oracle boxes), proposals (a file) or detector (a model)")
    proposals: str | None = Field(None, description="proposals file for source=proposals (CSV with scores or .pkl)")
    score_threshold: float = Field(0.0, ge=0.0, le=1.0, description="proposals: keep boxes scoring >= this")
    keep_top_box: bool = Field(True, description="proposals: keep each keyframe's best box below the threshold")
    lenient: bool = Field(False, description="proposals: warn about bad rows (boxes clipped, bad rows kept or "
                          "dropped) instead of refusing the file")
    detector: DetectConfig = DetectConfig()
    splits: tuple[str, ...] = Field(("train", "val"), description="manifest splits to detect on")

    @model_validator(mode="after")
    def _source_needs(self) -> DetectStageConfig:
        if self.source == "proposals" and not self.proposals:
            raise ValueError("source=proposals needs proposals: PATH")
        return self


class FinetuneStageConfig(StageConfig):
    """Backbone architecture + optional pretrained weights + fine-tuning (+ optional detector)."""

    backbone: BackboneName = "slowfast_r50"
    family: Literal["pyslowfast", "mmaction2"] = Field("pyslowfast", description="SlowFast/SlowOnly conventions")
    width: int = Field(64, ge=1, description="SlowFast/SlowOnly slow stem width (64 = the published R50)")
    blocks: tuple[int, int, int, int] | None = Field(None, description="blocks per stage (null: the depth's)")
    alpha: int = Field(4, ge=1, description="SlowFast frame-rate ratio")
    weights: str | None = Field(None, description="pretrained checkpoint (PySlowFast/MMAction2/torchvision) to start from")
    train: FinetuneConfig | None = FinetuneConfig()
    max_clips: int | None = Field(None, ge=1, description="fine-tune on an even subset of this many train keyframes")
    first_videos: int | None = Field(None, ge=1, description="fine-tune on the train keyframes among the first N videos (by id) only")
    init_seed: int = Field(0, description="seed of the random initialisation")
    detector: DetectorTrainConfig | None = Field(None, description="also fine-tune tiny_fasterrcnn on the train GT boxes")

    def knobs(self) -> dict[str, Any]:
        """The backbone constructor's arguments besides its name (recorded in backbone.json)."""
        if self.backbone.startswith(("slowfast", "slowonly")):
            knobs: dict[str, Any] = {"family": self.family, "width": self.width}
            if self.blocks is not None:
                knobs["blocks"] = self.blocks
            if self.backbone.startswith("slowfast"):
                knobs["alpha"] = self.alpha
            return knobs
        knobs = {"weights_path": self.weights} if self.weights else {}
        # X3D / VideoMAE / MViT v2-B: width (X3D: and blocks) given -> a reduced model; left out -> the published size
        if self.backbone.startswith(("x3d_", "vit_", "mvit_v2_b", "mvit_v2_s_")):
            size = ("width", "blocks") if self.backbone.startswith("x3d_") else ("width",)
            knobs.update({k: getattr(self, k) for k in size if k in self.model_fields_set})
        return knobs


class EvaluateConfig(StageConfig):
    """How a trained head is scored."""

    split: Literal["train", "val", "test"] = Field("val", description="whose ground-truth keyframes are scored")
    protocol: Literal["2019", "2020"] = "2019"
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="drop (actor, class) scores below this from the CSV")
    plots: bool = Field(True, description="write precision-recall plots (PNG) with the report")


PipelineStage = Literal["synth", "ingest", "detect", "finetune", "extract", "train", "acfb", "evaluate"]


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
        if "acfb" in self.heads:
            raise ValueError("heads: acfb is trained by its own stage; set acfb: true instead")
        if self.acfb and "acar" not in self.heads:
            raise ValueError("acfb: true needs 'acar' in heads (ACFB's bank comes from the trained ACAR head)")
        if len(set(self.heads)) != len(self.heads):
            raise ValueError(f"heads repeat a name: {list(self.heads)}")
        return self

    def wants(self, stage: str) -> bool:
        """Whether ``stage`` runs, given ``stop_after``."""
        order = list(PipelineStage.__args__)  # type: ignore[attr-defined]
        return order.index(stage) <= order.index(self.stop_after)


def demo_config(preset: str = "demo", **synth_values: Any) -> PipelineConfig:
    """The `stad demo` pipeline: sized to finish in minutes on two CPU cores (configs/pipeline.yaml
    holds the same settings; tests keep them equal).

    A tiny SlowFast (slow width 8, one block per stage: 288 channels) sees 8x2-frame clips (1.6 s at
    10 fps, the synthetic dataset's recommended clip) and is fine-tuned with AdamW on every training
    keyframe; heads use small latent sizes and train for a few epochs.
    """
    return PipelineConfig(
        synth=preset_config(preset, synth_values or None),
        ingest=IngestConfig(verify_decode=False),
        finetune=FinetuneStageConfig(
            family="mmaction2", width=8, blocks=(1, 1, 1, 1), first_videos=18 if preset == "demo" else None,
            # AdamW, every train keyframe, 10 epochs (~640 steps): the backbone's features decide the
            # table (docs/heads.md, "What limits the demo"); the tiny preset (tests) trains one epoch.
            train=FinetuneConfig(num_frames=8, stride=2, short_side=None, epochs=10 if preset == "demo" else 1,
                                 batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=1e-4, dropout=0.0,
                                 warmup_steps=20, schedule="cosine", relation_dim=64),
        ),
        extract=ExtractConfig(num_frames=8, stride=2, short_side=None, context_grid=8, batch_size=16,
                              num_workers=0, dtype="float16", roi_geometry=True, roi_appearance=True),
        train=TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=1e-4, warmup_epochs=0.5,
                          epochs=12 if preset == "demo" else 4, batch_size=16, latent_dim=64, reduced_dim=64,
                          relation_dim=64, norm_groups=16, input_norm=True, dropout=0.0),
    )
