"""The two non-detector box sources: imported proposals and ground truth (the oracle setting)."""

from __future__ import annotations

from pathlib import Path

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.proposals import KeyframeDetections, group_by_keyframe, read_proposals
from stad_core.ava.table import AvaTable

GROUNDTRUTH_SOURCE = "groundtruth"


def imported_proposals(
    path: str | Path, *, score_threshold: float = 0.0, keep_top_box: bool = True, lenient: bool = False
) -> dict[KeyframeKey, KeyframeDetections]:
    """Proposals from an AVA-style CSV with scores or an MMAction2 pickle (``{"vid,tttt": [N, 5]}``),
    thresholded with the same keep-top-box rule as the detectors; validated like ground truth
    (``lenient``: bad rows are warned about instead of refused)."""
    return read_proposals(path, score_threshold=score_threshold, keep_top_box=keep_top_box, lenient=lenient)


def groundtruth_boxes(table: AvaTable) -> dict[KeyframeKey, KeyframeDetections]:
    """Every distinct ground-truth box per keyframe (one per person, however many actions), score 1.

    ``person_ids`` carry the file's AVA person ids (8-column ground truth; -1 where an id was
    unusable) so extracted banks know who is who; a 7-column file without ids gives None.
    """
    return group_by_keyframe(table, source=GROUNDTRUTH_SOURCE)
