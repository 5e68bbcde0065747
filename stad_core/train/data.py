"""From banks to typed head batches: samples (keyframes + their rows), and batch assembly.

Everything is read through :class:`stad_core.banks.FeatureBankReader` (a zarr bank or a DictBank):

* ``BankSet.actors`` -- the long-term bank: its rows at a keyframe are the actors (features, boxes,
  scores) and its window around the keyframe is the LFB memory;
* ``BankSet.context`` -- the context bank (``context(video, t)`` -> [C, h, w]) for ACRN/ACAR/ACFB;
* ``BankSet.actor_context`` -- the actor-context bank whose window feeds ACFB.

Training windows draw their random per-second subsets from the generator the caller passes (the
trainer derives it from (seed, epoch, step), so a resumed run draws the same windows); evaluation
windows are deterministic per keyframe (the bank's rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from stad_core.ava.keys import KeyframeKey
from stad_core.banks import FeatureBankReader
from stad_core.errors import ConfigError
from stad_core.heads import HEADS, HeadInputs
from stad_core.train.config import TrainConfig
from stad_core.train.labels import KeyframeTruth, assign_labels


@dataclass(frozen=True)
class BankSet:
    """The banks a head reads (context / actor_context only for heads that use them)."""

    actors: FeatureBankReader
    context: FeatureBankReader | None = None
    actor_context: FeatureBankReader | None = None


@dataclass(frozen=True)
class Sample:
    """One keyframe clip: the rows of ``actors.rows_at(video_id, timestamp)`` it uses.

    rows: [n] int64 positions within that keyframe's rows; labels: [n, K] bool, or None (prediction).
    """

    video_id: str
    timestamp: float
    rows: np.ndarray
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class Batch:
    """A head batch plus what training and prediction need around it.

    targets [N, K] float (None for prediction); keyframes [B]; detector_scores [N].
    """

    inputs: HeadInputs
    targets: Tensor | None
    keyframes: list[KeyframeKey]
    detector_scores: Tensor


def check_banks(config: TrainConfig, banks: BankSet) -> None:
    """Refuse banks that do not fit the head: missing banks or feature dims that differ."""
    head = HEADS[config.head]
    wanted: list[tuple[str, FeatureBankReader | None, int | None, bool]] = [
        ("actors", banks.actors, config.actor_dim, True),
        ("actors (long-term window)", banks.actors, config.long_term_dim, head.uses_long_term),
        ("context", banks.context, config.context_dim, head.uses_context),
        ("actor_context", banks.actor_context, config.actor_context_dim, head.uses_actor_context),
    ]
    for name, bank, dim, needed in wanted:
        if not needed:
            continue
        if bank is None:
            raise ConfigError(f"head {config.head!r} needs a {name} bank")
        if dim is not None and bank.spec.feature_dim != dim:
            raise ConfigError(
                f"head {config.head!r}: the {name} bank has feature_dim {bank.spec.feature_dim}, config says {dim}"
            )


def _keyframe_groups(timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted row timestamps [R] -> (keyframe times [T], first row [T], row count [T])."""
    keys = np.round(np.asarray(timestamps, np.float64), 3)
    _, first, count = np.unique(keys, return_index=True, return_counts=True)
    return np.asarray(timestamps, np.float64)[first], first, count


def training_samples(
    actors: FeatureBankReader, truth: dict[KeyframeKey, KeyframeTruth], *, iou_threshold: float = 0.9
) -> list[Sample]:
    """Keyframes that have ground truth and at least one bank row matching it (IoU >= threshold).

    Only matched rows are kept (they carry the labels of their ground-truth box); the samples are
    sorted by (video, time) so the sample list, hence the epoch order, is reproducible.
    """
    samples: list[Sample] = []
    for video in sorted(actors.videos()):
        rows = actors.read_video(video)
        times, first, count = _keyframe_groups(rows.timestamps)
        for t, a, n in zip(times.tolist(), first.tolist(), count.tolist()):
            gt = truth.get(KeyframeKey.at(video, t))
            if gt is None:
                continue
            labels, matched = assign_labels(rows.boxes[a : a + n], gt, iou_threshold)
            if matched.any():
                keep = np.flatnonzero(matched)
                samples.append(Sample(video, t, keep, labels[keep]))
    return samples


def prediction_samples(actors: FeatureBankReader, keyframes: Iterable[KeyframeKey] | None = None) -> list[Sample]:
    """Every row of every keyframe of the bank, or only of ``keyframes`` (those with rows)."""
    wanted = None if keyframes is None else {KeyframeKey.at(v, t) for v, t in keyframes}
    samples: list[Sample] = []
    for video in sorted(actors.videos()):
        rows = actors.read_video(video)
        times, _, count = _keyframe_groups(rows.timestamps)
        for t, n in zip(times.tolist(), count.tolist()):
            if wanted is None or KeyframeKey.at(video, t) in wanted:
                samples.append(Sample(video, t, np.arange(n)))
    return samples


def make_batch(
    samples: Sequence[Sample],
    banks: BankSet,
    head: nn.Module,
    *,
    window_width: int,
    window_per_second: int,
    training: bool,
    rng: np.random.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Batch:
    """Read the samples' rows, context maps and windows into one :class:`Batch` (float32)."""
    feats, boxes, scores, clip, labels = [], [], [], [], []
    for b, s in enumerate(samples):
        rows = banks.actors.rows_at(s.video_id, s.timestamp).take(s.rows)
        feats.append(np.asarray(rows.features, np.float32))
        boxes.append(np.asarray(rows.boxes, np.float32))
        scores.append(np.asarray(rows.scores, np.float32))
        clip.append(np.full(len(rows), b, np.int64))
        if s.labels is not None:
            labels.append(s.labels)
    keys = [(s.video_id, s.timestamp) for s in samples]
    dim = banks.actors.spec.feature_dim

    def tensor(parts: list[np.ndarray], shape_tail: tuple[int, ...], dtype: type = np.float32) -> Tensor:
        array = np.concatenate(parts) if parts else np.zeros((0, *shape_tail), dtype)
        return torch.from_numpy(np.ascontiguousarray(array, dtype=dtype)).to(device)

    context = long_term = long_term_mask = actor_context = actor_context_mask = None
    if getattr(head, "uses_context", False):
        assert banks.context is not None
        context = torch.from_numpy(np.stack([np.asarray(banks.context.context(v, t), np.float32) for v, t in keys]))
    window = dict(width=window_width, per_second=window_per_second, training=training, rng=rng)
    if getattr(head, "uses_long_term", False):
        lt = banks.actors.gather_windows(keys, **window)
        long_term, long_term_mask = torch.from_numpy(lt.features.astype(np.float32)), torch.from_numpy(lt.mask)
    if getattr(head, "uses_actor_context", False):
        assert banks.actor_context is not None
        ac = banks.actor_context.gather_windows(keys, **window)
        actor_context, actor_context_mask = torch.from_numpy(ac.features.astype(np.float32)), torch.from_numpy(ac.mask)
    inputs = HeadInputs(
        actor_features=tensor(feats, (dim,)),
        actor_boxes=tensor(boxes, (4,)),
        clip_index=tensor(clip, (), np.int64),
        num_clips=len(samples),
        context=context,
        long_term=long_term,
        long_term_mask=long_term_mask,
        actor_context=actor_context,
        actor_context_mask=actor_context_mask,
    ).to(device)
    targets = tensor([lab.astype(np.float32) for lab in labels], (0,)) if len(labels) == len(samples) and labels else None
    return Batch(inputs, targets, [KeyframeKey.at(v, t) for v, t in keys], tensor(scores, ()))
