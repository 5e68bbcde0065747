"""The tube DAG as the ``tubes_pipeline`` flow under the Prefect test harness, on synthetic data:
synth -> tubes_ingest -> tubes_detect + finetune (export only) -> tubes_extract -> train -> tubes_evaluate,
with frame keyframes (not 1 fps)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from flows.tubes_pipeline import tubes_pipeline_flow
from stad_core.errors import StadError
from stad_core.stage_configs import DetectStageConfig, demo_config
from stad_core.tubes import load_ground_truth
from stad_core.tubes.config import TubesEvaluateConfig, TubesIngestConfig, TubesPipelineConfig
from stad_core.tubes.evaluate import evaluate_tube_files
from storage.stages.runner import run_stage
from storage.uri import local_path

STRIDE = 3  # every 3rd frame of the 10 fps videos is a keyframe (3.3 per second instead of 1)


def test_tube_pipeline_trains_per_frame_and_reports_frame_and_video_map(prefect_harness: str, tmp_path: Path,
                                                                        no_gpus: None) -> None:
    ws = str(tmp_path / "ws")
    base = demo_config("tiny", videos=2, seconds=12, alarm_fraction=0.0, keyframe_margin=1, width=96, height=80)
    config = TubesPipelineConfig(
        synth=base.synth, ingest=TubesIngestConfig(frame_stride=STRIDE, margin_frames=30),
        finetune=base.finetune.model_copy(update={"train": None}), extract=base.extract,
        train=base.train.model_copy(update={"epochs": 3}), heads=("linear",),
        evaluate=TubesEvaluateConfig(link_min_length=4))
    refs = tubes_pipeline_flow(config, ws)
    assert set(refs) == {"synth", "tubes_ingest", "tubes_detect", "finetune", "tubes_extract", "train:linear",
                         "tubes_evaluate:linear"}
    ingest, evaluate = refs["tubes_ingest"], refs["tubes_evaluate:linear"]
    assert ingest.upstream == {"synth": refs["synth"].key}
    # frames 31..90 of 120, every 3rd: 20 keyframes per video, one clip each (none folded into seconds)
    assert ingest.counts["keyframes"] == 40 and ingest.counts["tubes"] > 10
    assert refs["tubes_extract"].counts["clips"] == 40
    assert refs["train:linear"].counts["train_keyframes"] == 20  # every frame keyframe of the training video
    assert refs["train:linear"].upstream["tubes_ingest"] == ingest.key
    out = local_path(evaluate.uri)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("f-mAP@0.5", "v-mAP@0.2", "v-mAP@0.5", "v-mAP@0.1:0.9"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["keyframes"] == 20 and summary["frame_stride"] == STRIDE
    assert (out / "report" / "video_map.png").exists() and "v-mAP@0.2" in (out / "report" / "report.md").read_text()
    # Linked tubes bridge the frames between keyframes with interpolated boxes: gap-free frame numbers.
    tubes = pickle.loads((out / "video_detections.pkl").read_bytes())
    assert summary["tubes"] == sum(len(t) for t in tubes.values()) > 0
    assert all(np.all(np.diff(t[:, 0]) == 1) for ts in tubes.values() for _, _, t in ts)
    # The saved files re-evaluate to the same figures (what `stad eval-tubes` prints): f-mAP against the
    # ground truth of the frames the model ran on, v-mAP against the whole tubes.
    gt_path = local_path(ingest.path("tubes_gt.pkl"))
    frame_gt = load_ground_truth(out / "frame_gt.pkl")
    assert set(frame_gt.gttubes["synth_0001"]) and all(
        set(t[:, 0].tolist()) <= set(range(31, 91, STRIDE)) for ts in frame_gt.gttubes["synth_0001"].values() for t in ts)
    assert evaluate_tube_files(out / "frame_gt.pkl", out / "frame_detections.pkl").summary["f-mAP@0.5"] == \
        pytest.approx(summary["f-mAP@0.5"])
    again = evaluate_tube_files(gt_path, video_detections=out / "video_detections.pkl")
    assert again.summary["v-mAP@0.1:0.9"] == pytest.approx(summary["v-mAP@0.1:0.9"])
    assert load_ground_truth(gt_path).test_videos == [["synth_0001"]]

    # Run again: every stage reuses its output. Run alone, tubes_evaluate finds the newest tube head.
    assert all(r.reused for r in tubes_pipeline_flow(config, ws).values())
    alone = run_stage("tubes_evaluate", TubesEvaluateConfig(link_min_length=4), ws)
    assert alone.key == evaluate.key
    with pytest.raises(StadError, match="reads a tubes_ingest output"):
        run_stage("tubes_detect", DetectStageConfig(source="groundtruth"), ws,
                  upstream={"ingest": run_stage("ingest", base.ingest, ws)})
