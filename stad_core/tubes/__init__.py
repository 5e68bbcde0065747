"""Action tubes: ground-truth tube files, per-frame detections, tube linking and frame/video mAP.

See ``docs/tubes.md``. The file layouts are those shared by MultiSports, UCF101-24 and JHMDB.
"""

from __future__ import annotations

from stad_core.tubes.gt import (
    TubeGroundTruth,
    load_ground_truth,
    parse_ground_truth,
    safe_load_pickle,
    save_ground_truth,
)
from stad_core.tubes.iou import temporal_iou, tube_iou
from stad_core.tubes.metrics import (
    MULTISPORTS_SKIPPED,
    PRESETS,
    VIDEO_THRESHOLDS,
    APResult,
    EvalSettings,
    frame_ap,
    settings_for,
    video_ap,
    video_map_summary,
)

__all__ = [
    "MULTISPORTS_SKIPPED",
    "PRESETS",
    "VIDEO_THRESHOLDS",
    "APResult",
    "EvalSettings",
    "TubeGroundTruth",
    "frame_ap",
    "load_ground_truth",
    "parse_ground_truth",
    "safe_load_pickle",
    "save_ground_truth",
    "settings_for",
    "temporal_iou",
    "tube_iou",
    "video_ap",
    "video_map_summary",
]
