"""tubes_evaluate: a head trained on a ``tubes_ingest`` output -> per-frame detections, linked tubes,
frame-mAP and video-mAP against the dataset's tubes.

Outputs in ``<ws>/tubes_evaluate/<hash>-<key>/``: ``frame_detections.pkl`` and ``video_detections.pkl``
(the MultiSports layouts, readable by the public evaluator and `stad eval-tubes`), ``frame_gt.pkl`` (the
ground truth of the frames the model ran on, f-mAP's), ``report/``
(``report.md``, ``video_map.png``) and ``summary.json``. With ``frame_stride`` n > 1 the model runs on
every n-th frame: f-mAP counts the ground truth of those frames (``frame_gt.pkl``), and linking bridges the frames between
them with interpolated boxes, so v-mAP is over the whole tubes. Run alone, it scores the newest train output on the
tubes_ingest and extract outputs it was built from.
"""

from __future__ import annotations

import json

import numpy as np

from stad_core.atomic import atomic_write_text
from stad_core.ava.keys import KeyframeKey
from stad_core.errors import StadError
from stad_core.train import load_trained_head, predict
from stad_core.tubes.config import TubesEvaluateConfig
from stad_core.tubes.dataset import time_frame
from stad_core.tubes.evaluate import evaluate_tubes
from stad_core.tubes.files import save_frame_detections, save_video_detections
from stad_core.tubes.gt import load_ground_truth, restrict_frames, save_ground_truth
from stad_core.tubes.linking import LinkSettings
from stad_core.tubes.metrics import settings_for
from stad_core.tubes.report import write_report
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.ingest import videos_of
from storage.stages.progress import stage_progress
from storage.stages.train import CHECKPOINT, open_banks
from storage.stages.tubes_ingest import GT_FILE, NAME as INGEST, tubes_meta
from storage.uri import local_path
from storage.workspace import StageRef, Workspace

NAME = "tubes_evaluate"
SUMMARY = "summary.json"
FRAME_GT = "frame_gt.pkl"  # the ground truth of the frames the model ran on (f-mAP's)


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    model = given.get("model")
    if model is None:
        refs = [r for r in ws.history("train") if INGEST in r.upstream]
        if not refs:
            raise StadError(f"tubes_evaluate needs a head trained on a tubes_ingest output in {ws.root}")
        model = refs[0]  # the newest
    if INGEST not in model.upstream and "ingest" not in given:
        raise StadError(f"{model.uri} was not trained on a tubes_ingest output: pass one as ingest")
    extract = given.get("extract")
    if extract is None:
        stage = "tubes_extract" if "tubes_extract" in model.upstream else "extract"
        extract = ws.find(stage, model.upstream[stage])
    return {"model": model, "ingest": given.get("ingest") or ws.find(INGEST, model.upstream[INGEST]),
            "extract": extract}


def prepare(ws: Workspace, config: TubesEvaluateConfig, upstream: dict[str, StageRef]) -> StagePlan:
    if upstream["ingest"].stage != INGEST:
        raise StadError(f"tubes_evaluate reads a tubes_ingest output, got a {upstream['ingest'].stage} one")
    ref = ws.plan(NAME, config, upstream=[upstream["model"], upstream["ingest"], upstream["extract"]])
    return StagePlan(ref, config, upstream)


def frame_rows(predictions, gt, meta: dict, split: int, min_score: float) -> np.ndarray:  # noqa: ANN001
    """``[N, 8]`` frame detection rows (video index, frame, label, score, pixel box) of head predictions."""
    names = meta["videos"]
    index = {v: i for i, v in enumerate(gt.videos(split))}
    rows = []
    for vid in np.unique(predictions.video_ids):
        name = names[vid]
        if name not in index:
            continue
        sel = np.flatnonzero(predictions.video_ids == vid)
        h, w = gt.resolution[name]
        frames = time_frame(predictions.timestamps[sel], meta["fps"][name])
        boxes = predictions.boxes[sel] * np.array([w, h, w, h])
        scores = predictions.scores[sel]
        actor, col = np.nonzero(scores >= min_score)
        labels = np.asarray(predictions.action_ids)[col] - 1
        rows.append(np.column_stack([np.full(len(actor), index[name]), frames[actor], labels,
                                     scores[actor, col], boxes[actor]]))
    return np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 8))


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, TubesEvaluateConfig)
    model, ingest, extract = plan.upstream["model"], plan.upstream["ingest"], plan.upstream["extract"]
    out = local_path(plan.ref.uri)
    meta = tubes_meta(ingest)
    gt = load_ground_truth(local_path(ingest.path(GT_FILE)))
    split = int(meta["split"]) - 1
    keyframes = [KeyframeKey.at(e.video_id, t) for e in videos_of(ingest, [config.split]) for t in e.keyframes]
    trained = load_trained_head(local_path(model.path(CHECKPOINT)), device=device)
    predictions = predict(trained.head, open_banks(extract), trained.loss, trained.classes,
                          window_width=trained.config.window_width,
                          window_per_second=trained.config.window_per_second, keyframes=keyframes,
                          batch_size=trained.config.batch_size, device=device, on_progress=stage_progress(NAME))
    rows = frame_rows(predictions, gt, meta, split, config.min_score)
    stride = int(meta["frame_stride"])
    link = LinkSettings(iou_threshold=config.link_iou, top_k=config.link_top_k, end_after=stride,
                        min_length=config.link_min_length)
    # f-mAP over the frames the model ran on (every frame with frame_stride 1 and no margin); v-mAP over
    # the whole tubes.
    names = meta["videos"]
    ran: dict[str, list[int]] = {}
    for k in keyframes:
        name = names[k.video_id]
        ran.setdefault(name, []).append(int(time_frame(float(k.timestamp), meta["fps"][name])))
    frame_gt = restrict_frames(gt, {v: np.asarray(ran.get(v, [])) for v in gt.videos(split)})
    save_ground_truth(frame_gt, out / FRAME_GT)  # `stad eval-tubes -g frame_gt.pkl -f frame_detections.pkl`
    result = evaluate_tubes(gt, rows, settings=settings_for(config.preset, split=split), link=link,
                            frame_iou=config.frame_iou, frame_gt=frame_gt)
    save_frame_detections(rows, out / "frame_detections.pkl")
    save_video_detections(result.video_detections or {}, out / "video_detections.pkl")
    if config.plots:
        write_report(result.summary, out / "report")
    summary = {**result.summary, "model": model.path_in_workspace, "epoch": trained.epoch, "split": config.split,
               "preset": config.preset, "frame_stride": stride, "keyframes": len(keyframes),
               "frame_detections": int(len(rows)),
               "tubes": int(sum(len(t) for t in (result.video_detections or {}).values()))}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1, default=float))
    return Finished({"keyframes": len(keyframes), "frame_detections": int(len(rows)), "tubes": summary["tubes"]},
                    extra={"summary": summary})


STAGE = Stage(NAME, TubesEvaluateConfig,
              "score a head on a tube dataset: frame detections, linked tubes, f-mAP and v-mAP report",
              upstream=("model", "ingest", "extract"), gpu=True, prepare=prepare, resolve=resolve, finish=finish,
              default_config="configs/tubes_evaluate.yaml")
