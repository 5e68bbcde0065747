"""Evaluate AVA files: read the label map, ground truth, detections and exclusions, then score."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stad_core.ava import read_ava_csv, read_exclusions, read_labelmap
from stad_core.ava.keys import AvaFormatError
from stad_core.errors import StadError
from stad_core.evaluation.frame_map import FrameMapResult, evaluate_frame_map
from stad_core.evaluation.rules import rules_for


def evaluate_files(
    labelmap: str | Path,
    groundtruth: str | Path,
    detections: str | Path,
    exclusions: str | Path | None = None,
    *,
    protocol: str = "2019",
    variant: str = "official",
    iou_threshold: float = 0.5,
    top_k: int | None = 50,
) -> FrameMapResult:
    """Frame-mAP of a detections CSV against a ground-truth CSV (see :func:`evaluate_frame_map`).

    Ground-truth boxes are validated (inside ``[0, 1]``, not inverted); detection boxes are not
    (degenerate ones are handled by the evaluation rules). Protocol 2020 accepts two-column
    ``video_id,timestamp`` ground-truth rows (annotated keyframes without boxes).

    Raises:
        InputFileError / AvaFormatError: a missing or malformed file, naming file and line.
        StadError: inconsistent options (e.g. exclusions with protocol 2020).
    """
    rules = rules_for(protocol, variant, top_k=top_k)  # fail on bad options before reading files
    if rules.protocol == "2020" and exclusions is not None:
        raise StadError("protocol 2020 takes no exclusions file (unannotated keyframes are absent from its ground truth)")
    labels = read_labelmap(labelmap)
    if len(labels.names) == 0:
        raise AvaFormatError(labelmap, "the label map defines no classes", hint="it needs item { name: ... id: N } entries")
    gt = read_ava_csv(groundtruth, kind="groundtruth", allow_boxless_rows=rules.protocol == "2020")
    det = read_ava_csv(detections, kind="detections", validate_boxes=False)
    if len(det) and bool((det.action_id < 0).any()):
        raise AvaFormatError(
            detections,
            "detections have no action id column (7 columns: person proposals?)",
            line=int(det.line[int(np.argmax(det.action_id < 0))]),
            hint="results rows are video_id,timestamp,x1,y1,x2,y2,action_id,score",
        )
    excluded = read_exclusions(exclusions) if exclusions is not None else None
    return evaluate_frame_map(
        gt,
        det,
        labels,
        exclusions=excluded,
        protocol=rules.protocol,
        variant=rules.variant,
        iou_threshold=iou_threshold,
        top_k=top_k,
    )
