"""Prediction over a bank's keyframes, AVA-format output, and frame-mAP of a head."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stad_core.ava.csv_write import write_ava_csv
from stad_core.ava.keys import KeyframeKey
from stad_core.ava.labelmap import LabelMap
from stad_core.ava.table import AvaTable
from stad_core.evaluation.frame_map import FrameMapResult, evaluate_frame_map
from stad_core.progress import ProgressFn, report
from stad_core.train.data import BankSet, make_batch, prediction_samples
from stad_core.train.labels import ClassSpace
from stad_core.train.losses import ActionLoss


@dataclass(frozen=True)
class Predictions:
    """Scores of every actor row: N rows, K classes.

    video_ids [N] object, timestamps [N] float64, boxes [N, 4] float64 normalised,
    detector_scores [N] float32, scores [N, K] float32 (columns = ``action_ids``).
    """

    video_ids: np.ndarray
    timestamps: np.ndarray
    boxes: np.ndarray
    detector_scores: np.ndarray
    scores: np.ndarray
    action_ids: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def to_table(self, *, min_score: float = 0.0) -> AvaTable:
        """AVA detections: one row per (actor, class) with score >= ``min_score`` (actor-major order)."""
        actor, column = np.nonzero(self.scores >= min_score)
        return AvaTable.from_arrays(
            self.video_ids[actor],
            self.timestamps[actor],
            self.boxes[actor].reshape(-1, 4),
            action_id=np.asarray(self.action_ids, np.int32)[column],
            score=self.scores[actor, column].astype(np.float64),
        )


@torch.no_grad()
def predict(
    head: nn.Module,
    banks: BankSet,
    loss: ActionLoss,
    classes: ClassSpace,
    *,
    window_width: int = 60,
    window_per_second: int = 5,
    keyframes: Iterable[KeyframeKey] | None = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    on_progress: ProgressFn | None = None,
) -> Predictions:
    """Score every row of the bank's keyframes (or of ``keyframes``), in eval mode, deterministically."""
    samples = prediction_samples(banks.actors, keyframes)
    was_training = head.training
    head.eval()
    vids, times, boxes, det, scores = [], [], [], [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        batch = make_batch(
            chunk, banks, head, window_width=window_width, window_per_second=window_per_second,
            training=False, device=device,
        )
        probs = loss.scores(head(batch.inputs)).float().cpu().numpy()
        clip = batch.inputs.clip_index.cpu().numpy()
        vids.append(np.asarray([chunk[c].video_id for c in clip], dtype=object))
        times.append(np.asarray([chunk[c].timestamp for c in clip], np.float64))
        boxes.append(batch.inputs.actor_boxes.cpu().numpy().astype(np.float64))
        det.append(batch.detector_scores.cpu().numpy())
        scores.append(probs)
        report(on_progress, min(start + batch_size, len(samples)), len(samples))
    head.train(was_training)
    k = classes.num_classes
    return Predictions(
        np.concatenate(vids) if vids else np.zeros(0, object),
        np.concatenate(times) if times else np.zeros(0),
        np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        np.concatenate(det) if det else np.zeros(0, np.float32),
        np.concatenate(scores) if scores else np.zeros((0, k), np.float32),
        classes.action_ids,
    )


def write_predictions_csv(path: str | Path, predictions: Predictions, *, min_score: float = 0.0) -> Path:
    """AVA-format detections CSV (``video, t, x1, y1, x2, y2, action_id, score``), 6 decimals."""
    write_ava_csv(path, predictions.to_table(min_score=min_score), decimals=6)
    return Path(path)


def evaluate_predictions(
    predictions: Predictions,
    groundtruth: AvaTable,
    label_map: LabelMap,
    *,
    exclusions: Collection[KeyframeKey] | None = None,
    protocol: str = "2019",
) -> FrameMapResult:
    """Frame-mAP@0.5 of ``predictions`` through the project's evaluator."""
    return evaluate_frame_map(groundtruth, predictions.to_table(), label_map, exclusions=exclusions, protocol=protocol)
