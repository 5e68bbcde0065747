"""The head trainer: cached banks in, checkpoints and per-epoch frame-mAP out, exactly resumable.

Determinism contract (CPU): the epoch order is a permutation drawn from ``(seed, epoch)``; the
windows of step ``s`` of epoch ``e`` are drawn from ``(seed, e, s)``; dropout uses torch's global
generator, which the checkpoint saves and restores. So stopping after any step, rebuilding every
object from the checkpoint and continuing yields bit-identical weights to a run that never stopped.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.labelmap import LabelMap
from stad_core.ava.table import AvaTable
from stad_core.errors import ConfigError, StadError
from stad_core.heads import build_head
from stad_core.progress import ProgressFn, report
from stad_core.train.checkpoint import Checkpoint, EpochRecord, RNGState, load_checkpoint, save_checkpoint
from stad_core.train.config import TrainConfig
from stad_core.train.data import BankSet, Sample, check_banks, make_batch, training_samples
from stad_core.train.labels import ClassSpace, group_ground_truth
from stad_core.train.losses import ActionLoss
from stad_core.train.predict import evaluate_predictions, predict
from stad_core.train.schedule import LRSchedule


@dataclass(frozen=True)
class Validation:
    """What per-epoch validation needs: val banks, ground truth, the evaluated label map."""

    banks: BankSet
    groundtruth: AvaTable
    label_map: LabelMap
    exclusions: Collection[KeyframeKey] | None = None
    protocol: str = "2019"


@dataclass(frozen=True)
class TrainResult:
    """Where a ``fit`` call stopped: finished (all epochs) or interrupted after ``global_step``."""

    finished: bool
    epoch: int
    global_step: int
    history: list[EpochRecord]
    checkpoint: Path | None


def loss_from_config(config: TrainConfig, classes: ClassSpace) -> ActionLoss:
    return ActionLoss(
        config.loss,
        pose_columns=torch.from_numpy(classes.pose_columns) if classes.pose_ids else None,
        focal_gamma=config.focal_gamma,
        focal_alpha=config.focal_alpha,
    )


def optimizer_from_config(config: TrainConfig, head: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(head.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)


@dataclass(frozen=True)
class TrainedHead:
    """What the evaluate stage needs from a checkpoint: the head (eval mode), its config, classes, scorer."""

    head: nn.Module
    config: TrainConfig
    classes: ClassSpace
    loss: ActionLoss
    epoch: int


def load_trained_head(path: str | Path, *, device: torch.device | str = "cpu") -> TrainedHead:
    """Rebuild the head of a training checkpoint (no banks or ground truth needed)."""
    ckpt = load_checkpoint(path)
    config = TrainConfig.model_validate(ckpt.config)
    if config.config_hash() != ckpt.config_hash:
        raise StadError(f"{path}: the stored config does not match its hash (written by another stad version?)")
    classes = ClassSpace(tuple(ckpt.action_ids), tuple(ckpt.pose_ids))
    head = build_head(config)
    head.load_state_dict(ckpt.model)
    return TrainedHead(head.to(device).eval(), config, classes, loss_from_config(config, classes), ckpt.epoch)


class Trainer:
    """Trains one head on cached banks.

    ``Trainer(config, banks, groundtruth, classes)`` starts fresh (seeded from ``config.seed``);
    ``trainer.load(path)`` continues from a checkpoint of the same config (hash checked).
    """

    def __init__(
        self,
        config: TrainConfig,
        banks: BankSet,
        groundtruth: AvaTable,
        classes: ClassSpace,
        *,
        validation: Validation | None = None,
        checkpoint_path: str | Path | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if classes.num_classes != config.num_classes:
            raise ConfigError(f"config.num_classes is {config.num_classes} but the class space has {classes.num_classes}")
        check_banks(config, banks)
        if validation is not None:
            check_banks(config, validation.banks)
        self.config, self.banks, self.classes, self.validation = config, banks, classes, validation
        self.device = torch.device(device)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        truth = group_ground_truth(groundtruth, classes)
        self.samples: list[Sample] = training_samples(banks.actors, truth, iou_threshold=config.label_iou)
        if not self.samples:
            raise StadError(
                "no training keyframes: no bank row matches a ground-truth box with IoU >= "
                f"{config.label_iou} (are the banks and the annotations from the same videos?)"
            )
        self.steps_per_epoch = math.ceil(len(self.samples) / config.batch_size)

        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
        self.head = build_head(config).to(self.device)
        if getattr(self.head, "input_norm", None) is not None:  # fixed statistics of the training rows
            rows = [np.asarray(banks.actors.rows_at(s.video_id, s.timestamp).take(s.rows).features, np.float32)
                    for s in self.samples]
            self.head.input_norm.set_statistics(np.concatenate(rows))
        self.optimizer = optimizer_from_config(config, self.head)
        self.schedule = LRSchedule.from_config(config, self.steps_per_epoch)
        self.loss = loss_from_config(config, classes)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.epoch_loss_sum = 0.0
        self.history: list[EpochRecord] = []

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> Checkpoint:
        return Checkpoint(
            config=self.config.model_dump(mode="json"),
            config_hash=self.config.config_hash(),
            model={k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()},
            optimizer=self.optimizer.state_dict(),
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            global_step=self.global_step,
            rng=RNGState.capture(),
            history=list(self.history),
            epoch_loss_sum=self.epoch_loss_sum,
            action_ids=list(self.classes.action_ids),
            pose_ids=list(self.classes.pose_ids),
        )

    def save(self, path: str | Path | None = None) -> Path:
        path = path if path is not None else self.checkpoint_path
        if path is None:
            raise StadError("no checkpoint path: pass one to Trainer(...) or save(path)")
        return save_checkpoint(path, self.state())

    def load(self, path: str | Path) -> None:
        """Continue from ``path``: weights, optimizer, schedule position, epoch/step, RNG, history."""
        ckpt = load_checkpoint(path)
        if ckpt.config_hash != self.config.config_hash():
            saved = TrainConfig.model_validate(ckpt.config).model_dump()
            diff = [f"{k}: {saved[k]!r} -> {v!r}" for k, v in self.config.model_dump().items() if saved.get(k) != v]
            raise ConfigError(f"{path}: checkpoint was trained with another config ({'; '.join(diff)})")
        if tuple(ckpt.action_ids) != self.classes.action_ids:
            raise ConfigError(f"{path}: checkpoint scores action ids {ckpt.action_ids}, this run {list(self.classes.action_ids)}")
        self.head.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.epoch, self.step_in_epoch, self.global_step = ckpt.epoch, ckpt.step_in_epoch, ckpt.global_step
        self.epoch_loss_sum = ckpt.epoch_loss_sum
        self.history = list(ckpt.history)
        ckpt.rng.restore()

    # -- training ------------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> np.ndarray:
        """Sample order of ``epoch``: a permutation drawn from (seed, epoch)."""
        return np.random.default_rng([self.config.seed, epoch]).permutation(len(self.samples))

    def train_step(self) -> float:
        """One optimizer step at the current (epoch, step_in_epoch); returns the batch loss."""
        cfg = self.config
        order = self.epoch_order(self.epoch)
        take = order[self.step_in_epoch * cfg.batch_size : (self.step_in_epoch + 1) * cfg.batch_size]
        batch = make_batch(
            [self.samples[i] for i in take], self.banks, self.head,
            window_width=cfg.window_width, window_per_second=cfg.window_per_second, training=True,
            rng=np.random.default_rng([cfg.seed, self.epoch, self.step_in_epoch]), device=self.device,
        )
        self.schedule.apply(self.optimizer, self.global_step)
        self.head.train()
        loss = self.loss(self.head(batch.inputs), batch.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.head.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.global_step += 1
        self.step_in_epoch += 1
        value = float(loss.detach())
        self.epoch_loss_sum += value
        return value

    def validate(self) -> EpochRecord:
        """Frame-mAP of the current head on the validation set (through the project's evaluator)."""
        lr = self.optimizer.param_groups[0]["lr"]
        record = EpochRecord(self.epoch, self.epoch_loss_sum / max(self.step_in_epoch, 1), lr)
        if self.validation is None:
            return record
        v = self.validation
        kv, kt, _ = v.groundtruth.keyframe_groups()
        keyframes = [KeyframeKey.at(v.groundtruth.videos[i], t) for i, t in zip(kv.tolist(), kt.tolist())]
        predictions = predict(
            self.head, v.banks, self.loss, self.classes, window_width=self.config.window_width,
            window_per_second=self.config.window_per_second, keyframes=keyframes,
            batch_size=self.config.batch_size, device=self.device,
        )
        result = evaluate_predictions(predictions, v.groundtruth, v.label_map, exclusions=v.exclusions, protocol=v.protocol)
        record.val_map = None if math.isnan(result.mAP) else float(result.mAP)
        record.val_class_ap = {c.id: float(c.ap) for c in result.classes if not math.isnan(c.ap)}
        return record

    def fit(self, *, stop_after_steps: int | None = None, on_progress: ProgressFn | None = None) -> TrainResult:
        """Train until ``config.epochs`` are done, or stop (with a checkpoint) after a global step.

        A checkpoint is written every ``config.checkpoint_every`` steps (if > 0), after each epoch
        (with its validation record) and when stopping early -- when a checkpoint path is set.
        """
        cfg = self.config
        total = cfg.epochs * self.steps_per_epoch
        while self.epoch < cfg.epochs:
            while self.step_in_epoch < self.steps_per_epoch:
                self.train_step()
                report(on_progress, self.global_step, total)
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 and self.checkpoint_path:
                    self.save()
                if stop_after_steps is not None and self.global_step >= stop_after_steps:
                    path = self.save() if self.checkpoint_path else None
                    return TrainResult(False, self.epoch, self.global_step, list(self.history), path)
            self.history.append(self.validate())
            self.epoch += 1
            self.step_in_epoch = 0
            self.epoch_loss_sum = 0.0
            if self.checkpoint_path:
                self.save()
        return TrainResult(True, self.epoch, self.global_step, list(self.history), self.checkpoint_path)
