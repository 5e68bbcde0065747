"""A tiny trained workspace for the bundle/infer/viewer tests, built with the plain stage runner.

Synthetic data (two train videos, one val video, 12 s each, keyframes at every second 2..10), a
seeded random ``tiny_fasterrcnn`` saved as a weights file and used as the person detector (its boxes
are arbitrary but deterministic: a new video gets exactly the boxes the pipeline's evaluation saw),
the demo's tiny SlowFast without fine-tuning. The heads train on ground-truth boxes (training needs
rows that match the annotations) and are evaluated on the detector's boxes, like ``stad infer``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from stad_core.detection import DetectConfig, build_detector, save_detector
from stad_core.heads.variants import variant_fields
from stad_core.stage_configs import DetectStageConfig, EvaluateConfig, demo_config
from storage.stages.runner import run_stage
from storage.workspace import StageRef

SECONDS = 12
MARGIN = 2  # the synthetic keyframes run from second 2 to second 10


def tiny_detector(path: Path) -> Path:
    """A seeded random-init person detector's weights."""
    torch.manual_seed(0)
    return save_detector(path, build_detector("tiny_fasterrcnn"), "tiny_fasterrcnn")


def detector_config(weights: Path) -> DetectConfig:
    # keep_top_box with an unreachable threshold: exactly one (the best) box per keyframe.
    return DetectConfig(detector="tiny_fasterrcnn", weights=str(weights), score_threshold=1.0, batch_size=4)


def build_trained_workspace(root: Path, heads: tuple[str, ...] = ("lfb_max",), acfb: bool = False) -> dict[str, StageRef]:
    """synth -> ingest -> detect (gt) -> finetune (export only) -> extract -> train each head (+ acar ->
    acfb); detect (detector) -> extract -> evaluate each trained head on the val split."""
    ws = str(root / "ws")
    base = demo_config("tiny", videos=3, seconds=SECONDS, alarm_fraction=0.0)
    weights = tiny_detector(root / "detector.pt")
    refs: dict[str, StageRef] = {}
    refs["synth"] = run_stage("synth", base.synth, ws)
    refs["ingest"] = run_stage("ingest", base.ingest.model_copy(
        update={"keyframes": "range", "keyframe_range": (MARGIN, SECONDS - MARGIN)}), ws)
    refs["detect_gt"] = run_stage("detect", DetectStageConfig(source="groundtruth"), ws)
    refs["finetune"] = run_stage("finetune", base.finetune.model_copy(update={"train": None}), ws)
    refs["extract_gt"] = run_stage("extract", base.extract, ws, upstream={"detect": refs["detect_gt"]})
    train = base.train.model_copy(update={"epochs": 1, "batch_size": 8})
    for head in heads + (("acar",) if acfb and "acar" not in heads else ()):
        refs[f"train:{head}"] = run_stage("train", train.model_copy(update=variant_fields(head)), ws,
                                          upstream={"extract": refs["extract_gt"]})
    if acfb:
        refs["acfb"] = run_stage("acfb", train.model_copy(update={"head": "acfb"}), ws,
                                 upstream={"extract": refs["extract_gt"], "acar": refs["train:acar"]})
    refs["detect"] = run_stage("detect", DetectStageConfig(source="detector", detector=detector_config(weights)), ws)
    refs["extract"] = run_stage("extract", base.extract, ws, upstream={"detect": refs["detect"]})
    for head in heads:
        refs[f"evaluate:{head}"] = run_stage("evaluate", EvaluateConfig(split="val", plots=True), ws,
                                             upstream={"model": refs[f"train:{head}"], "extract": refs["extract"]})
    return refs
