"""One call from files to tube metrics: ground truth + frame and/or video detections -> summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stad_core.errors import StadError
from stad_core.tubes.files import load_frame_detections, load_video_detections
from stad_core.tubes.gt import TubeGroundTruth, load_ground_truth
from stad_core.tubes.linking import LinkSettings, link_all
from stad_core.tubes.metrics import VIDEO_THRESHOLDS, EvalSettings, frame_ap, video_ap
from stad_core.tubes.report import summarize


@dataclass
class TubeEvaluation:
    summary: dict[str, Any]
    video_detections: dict[int, list[tuple[str, float, np.ndarray]]] | None = None
    linked: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def evaluate_tubes(
    gt: TubeGroundTruth,
    frame_detections: np.ndarray | None = None,
    video_detections: dict[int, list[tuple[str, float, np.ndarray]]] | None = None,
    *,
    settings: EvalSettings = EvalSettings(),
    link: LinkSettings | None = LinkSettings(),
    frame_iou: float = 0.5,
    thresholds: tuple[float, ...] = VIDEO_THRESHOLDS,
    frame_gt: TubeGroundTruth | None = None,
) -> TubeEvaluation:
    """f-mAP from frame detections; v-mAP from video detections, or from tubes linked out of the frame
    detections (``link`` settings; None = no linking). ``frame_gt``: the ground truth of f-mAP when it
    differs from v-mAP's (a model run on every n-th frame is scored on those frames)."""
    import time

    if frame_detections is None and video_detections is None:
        raise StadError("nothing to evaluate: give frame detections, video detections or both")
    timings: dict[str, float] = {}
    frame = None
    if frame_detections is not None:
        t0 = time.perf_counter()
        frame = frame_ap(frame_gt or gt, frame_detections, threshold=frame_iou, settings=settings)
        timings["frame_ap_s"] = time.perf_counter() - t0
    linked = False
    if video_detections is None and frame_detections is not None and link is not None:
        t0 = time.perf_counter()
        video_detections = link_all(frame_detections, gt.videos(settings.split), len(gt.labels), link, gt.nframes)
        timings["link_s"] = time.perf_counter() - t0
        linked = True
    video = None
    if video_detections is not None:
        t0 = time.perf_counter()
        video = video_ap(gt, video_detections, thresholds=thresholds, settings=settings)
        timings["video_ap_s"] = time.perf_counter() - t0
    return TubeEvaluation(summarize(frame, video), video_detections, linked, timings)


def evaluate_tube_files(
    groundtruth: str | Path,
    frame_detections: str | Path | None = None,
    video_detections: str | Path | None = None,
    **kwargs: Any,
) -> TubeEvaluation:
    """``evaluate_tubes`` on files (layouts in ``stad_core.tubes.files``)."""
    gt = load_ground_truth(groundtruth)
    settings: EvalSettings = kwargs.get("settings", EvalSettings())
    fd = None if frame_detections is None else load_frame_detections(frame_detections, gt, settings.split)
    vd = None if video_detections is None else load_video_detections(video_detections, gt)
    return evaluate_tubes(gt, fd, vd, **kwargs)
