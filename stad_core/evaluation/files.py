"""Evaluate AVA files: read the label map, ground truth, detections and exclusions, then score."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from stad_core.ava import read_ava_csv, read_exclusions, read_labelmap
from stad_core.ava.keys import AvaFormatError, emit_warnings
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
    lenient: bool = False,
    pixel_boxes: tuple[float, float] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> FrameMapResult:
    """Frame-mAP of a detections CSV against a ground-truth CSV (see :func:`evaluate_frame_map`).

    Both files are validated (``docs/data-formats.md``): boxes inside ``[0, 1]`` and not inverted,
    detection scores in ``[0, 1]``, and detection action ids known -- in the label map or in the
    ground truth (an 80-class results file scored on the 60-class list is fine: the other classes
    are dropped, as the official evaluator does). Protocol 2020 accepts two-column
    ``video_id,timestamp`` ground-truth rows (annotated keyframes without boxes).

    Args:
        lenient: detection problems a reader can work around become warnings (boxes clipped,
            inverted boxes and odd scores kept, unknown ids and blank lines dropped).
        pixel_boxes: ``(width, height)`` of the frames when the detections are in pixels.
        on_warning: receives each warning line of both readers (``file:line: ...``); default
            :func:`warnings.warn`.

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
    known = set(labels.ids) | set(np.unique(gt.action_id).tolist())
    det = read_ava_csv(
        detections, kind="detections", known_action_ids=known, known_from="the label map or the ground truth",
        lenient=lenient, pixel_boxes=pixel_boxes,
    )
    if len(det) and bool((det.action_id < 0).any()):
        raise AvaFormatError(
            detections,
            "detections have no action id column (7 columns: person proposals?)",
            line=int(det.line[int(np.argmax(det.action_id < 0))]),
            hint="results rows are video_id,timestamp,x1,y1,x2,y2,action_id,score",
        )
    emit_warnings(gt.warnings + det.warnings, on_warning)
    excluded = read_exclusions(exclusions) if exclusions is not None else None
    # Hand the detections over without keeping a reference here, so that the evaluation can let
    # go of the columns it no longer needs (most of the table) before it ranks.
    handed = [det]
    del det
    return evaluate_frame_map(
        gt,
        handed.pop(),
        labels,
        exclusions=excluded,
        protocol=rules.protocol,
        variant=rules.variant,
        iou_threshold=iou_threshold,
        top_k=top_k,
    )
