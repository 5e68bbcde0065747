"""Training relation heads on cached feature banks.

Public API::

    TrainConfig                                     # the stage config (head name, dims, loss, optimiser, schedule, ...)
    ClassSpace.from_label_map(label_map)            # logit columns <-> action ids (+ pose classes)
    Trainer(config, BankSet(actors, context, actor_context), groundtruth, classes,
            validation=Validation(...), checkpoint_path=...).fit()      # -> TrainResult
    trainer.load(checkpoint)                        # exact resume
    load_trained_head(checkpoint) -> TrainedHead    # head + config + classes, for the evaluate stage
    predict(head, banks, loss, classes) -> Predictions; write_predictions_csv(path, predictions)
    infer_actor_context(acar_head, banks)           # rows of an actor-context bank (ACFB)
"""

from __future__ import annotations

from stad_core.train.acfb import infer_actor_context
from stad_core.train.checkpoint import Checkpoint, EpochRecord, RNGState, load_checkpoint, save_checkpoint
from stad_core.train.config import LossName, OptimizerName, ScheduleName, TrainConfig
from stad_core.train.data import BankSet, Batch, Sample, check_banks, make_batch, prediction_samples, training_samples
from stad_core.train.labels import ClassSpace, KeyframeTruth, assign_labels, group_ground_truth
from stad_core.train.losses import ActionLoss
from stad_core.train.predict import Predictions, evaluate_predictions, predict, write_predictions_csv
from stad_core.train.schedule import LRSchedule
from stad_core.train.trainer import (
    TrainedHead,
    TrainResult,
    Trainer,
    Validation,
    load_trained_head,
    loss_from_config,
    optimizer_from_config,
)

__all__ = [
    "ActionLoss",
    "BankSet",
    "Batch",
    "Checkpoint",
    "ClassSpace",
    "EpochRecord",
    "KeyframeTruth",
    "LRSchedule",
    "LossName",
    "OptimizerName",
    "Predictions",
    "RNGState",
    "Sample",
    "ScheduleName",
    "TrainConfig",
    "TrainResult",
    "TrainedHead",
    "Trainer",
    "Validation",
    "assign_labels",
    "check_banks",
    "evaluate_predictions",
    "group_ground_truth",
    "infer_actor_context",
    "load_checkpoint",
    "load_trained_head",
    "loss_from_config",
    "make_batch",
    "optimizer_from_config",
    "predict",
    "write_predictions_csv",
    "prediction_samples",
    "save_checkpoint",
    "training_samples",
]
