"""Class space, ground truth per keyframe, and label assignment for bank rows.

Training rows are bank rows at a keyframe: boxes from ground truth (IoU 1 with their own box) or from
a detector. A row takes the labels of the ground-truth box it overlaps most if that IoU is
>= ``iou_threshold`` (0.9 by default); other rows are not used for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.labelmap import LabelMap
from stad_core.ava.table import AvaTable
from stad_core.boxes import box_iou
from stad_core.errors import ConfigError


@dataclass(frozen=True)
class ClassSpace:
    """Which action ids a head scores, in column order, and which of them are pose classes.

    action_ids: [K] 1-based AVA action ids; column ``k`` of the logits scores ``action_ids[k]``.
    pose_ids:   the ids scored by one softmax under the ``pose_softmax`` loss (AVA's
                PERSON_MOVEMENT classes); empty otherwise.
    """

    action_ids: tuple[int, ...]
    pose_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.action_ids or len(set(self.action_ids)) != len(self.action_ids):
            raise ConfigError("ClassSpace needs distinct action ids")
        if not set(self.pose_ids) <= set(self.action_ids):
            raise ConfigError(f"pose ids {sorted(set(self.pose_ids) - set(self.action_ids))} are not scored classes")

    @classmethod
    def from_label_map(cls, label_map: LabelMap, *, pose_type: str = "PERSON_MOVEMENT") -> ClassSpace:
        """All ids of ``label_map`` in id order; pose ids from its label types (if it has them)."""
        pose = tuple(i for i, kind in label_map.label_types.items() if kind == pose_type)
        return cls(tuple(label_map.ids), pose)

    @property
    def num_classes(self) -> int:
        return len(self.action_ids)

    @property
    def pose_columns(self) -> np.ndarray:
        """[P] int64 logit columns of the pose classes."""
        column = {a: k for k, a in enumerate(self.action_ids)}
        return np.asarray([column[a] for a in self.pose_ids], np.int64)


@dataclass(frozen=True)
class KeyframeTruth:
    """The ground-truth people of one keyframe: boxes [G, 4] float32, labels [G, K] bool."""

    boxes: np.ndarray
    labels: np.ndarray


def group_ground_truth(table: AvaTable, classes: ClassSpace) -> dict[KeyframeKey, KeyframeTruth]:
    """Group AVA rows (one per box and action) into people per keyframe, as multi-hot labels.

    Rows of one keyframe with the same box and person id are one person. Actions outside
    ``classes`` are ignored (the person still counts: all-negative labels).
    """
    column = {a: k for k, a in enumerate(classes.action_ids)}
    out: dict[KeyframeKey, KeyframeTruth] = {}
    if len(table) == 0:
        return out
    kf_video, kf_time, inverse = table.keyframe_groups()
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(kf_video) + 1))
    for g in range(len(kf_video)):
        rows = order[bounds[g] : bounds[g + 1]]
        people: dict[tuple, int] = {}
        boxes: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        for r in rows.tolist():
            key = (int(table.person_id[r]), *np.round(table.boxes[r], 6).tolist())
            if key not in people:
                people[key] = len(boxes)
                boxes.append(table.boxes[r].astype(np.float32))
                labels.append(np.zeros(classes.num_classes, bool))
            k = column.get(int(table.action_id[r]))
            if k is not None:
                labels[people[key]][k] = True
        out[KeyframeKey.at(table.videos[kf_video[g]], kf_time[g])] = KeyframeTruth(np.stack(boxes), np.stack(labels))
    return out


def assign_labels(boxes: np.ndarray, truth: KeyframeTruth, iou_threshold: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Labels of bank rows from the keyframe's ground truth.

    boxes: [R, 4] normalised xyxy -> (labels [R, K] bool, matched [R] bool). An unmatched row
    (best IoU < threshold, or no ground truth) gets all-False labels.
    """
    r, k = boxes.shape[0], truth.labels.shape[1]
    if r == 0 or truth.boxes.shape[0] == 0:
        return np.zeros((r, k), bool), np.zeros(r, bool)
    iou = box_iou(np.asarray(boxes, np.float64), np.asarray(truth.boxes, np.float64))  # [R, G]
    best = iou.argmax(axis=1)
    matched = iou[np.arange(r), best] >= iou_threshold
    labels = np.where(matched[:, None], truth.labels[best], False)
    return labels, matched
