"""Person boxes per keyframe: torchvision detectors, imported proposals, ground truth; detector
fine-tuning and person-detection AP."""

from __future__ import annotations

from stad_core.detection.ap import PersonAP, average_precision, person_ap
from stad_core.detection.detectors import (
    DETECTORS,
    PERSON_LABEL,
    DetectConfig,
    DetectorName,
    PersonDetector,
    build_detector,
    cached_weights_path,
    person_boxes,
)
from stad_core.detection.sources import groundtruth_boxes, imported_proposals
from stad_core.detection.training import (
    DetectionSample,
    DetectorTrainConfig,
    finetune_detector,
    keyframe_samples,
    save_detector,
    to_person_only,
)

__all__ = [
    "DETECTORS",
    "PERSON_LABEL",
    "DetectConfig",
    "DetectionSample",
    "DetectorName",
    "DetectorTrainConfig",
    "PersonAP",
    "PersonDetector",
    "average_precision",
    "build_detector",
    "cached_weights_path",
    "finetune_detector",
    "groundtruth_boxes",
    "imported_proposals",
    "keyframe_samples",
    "person_ap",
    "person_boxes",
    "save_detector",
    "to_person_only",
]
