"""Trainer parts: label assignment, ground-truth grouping, losses, schedules, checkpoint files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stad_core.ava import AvaTable, LabelMap
from stad_core.errors import ConfigError
from stad_core.train import (
    ActionLoss,
    ClassSpace,
    KeyframeTruth,
    LRSchedule,
    RNGState,
    TrainConfig,
    assign_labels,
    group_ground_truth,
)


def test_class_space_from_label_map_keeps_id_order_and_pose_classes() -> None:
    lm = LabelMap({14: "walk", 1: "bend", 80: "watch"}, {1: "PERSON_MOVEMENT", 14: "PERSON_MOVEMENT", 80: "PERSON_INTERACTION"})
    space = ClassSpace.from_label_map(lm)
    assert space.action_ids == (1, 14, 80) and space.pose_ids == (1, 14)
    assert space.pose_columns.tolist() == [0, 1]
    with pytest.raises(ConfigError):
        ClassSpace((1, 2), pose_ids=(3,))


def test_group_ground_truth_builds_multi_hot_people() -> None:
    table = AvaTable.from_arrays(
        ["v", "v", "v", "v", "w"],
        [902, 902, 902, 903, 902],
        [[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5], [0.6, 0.1, 0.9, 0.5], [0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]],
        action_id=[1, 80, 14, 99, 14],
        person_id=[0, 0, 1, 0, 3],
    )
    truth = group_ground_truth(table, ClassSpace((1, 14, 80)))
    assert set(truth) == {("v", 902.0), ("v", 903.0), ("w", 902.0)}
    assert truth[("v", 902.0)].labels.tolist() == [[True, False, True], [False, True, False]]
    assert truth[("v", 903.0)].labels.tolist() == [[False, False, False]]  # unscored action: a negative person


def test_assign_labels_uses_the_iou_threshold() -> None:
    truth = KeyframeTruth(np.array([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]], np.float32), np.array([[1, 0], [0, 1]], bool))
    boxes = np.array([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 0.96, 1.0], [0.5, 0.0, 0.94, 1.0], [0.2, 0, 0.7, 1]], np.float32)
    labels, matched = assign_labels(boxes, truth, 0.9)
    assert matched.tolist() == [True, True, False, False]  # IoU 1, 0.92, 0.88, 0.43
    assert labels.tolist() == [[True, False], [False, True], [False, False], [False, False]]
    labels, matched = assign_labels(boxes, KeyframeTruth(np.zeros((0, 4), np.float32), np.zeros((0, 2), bool)))
    assert labels.shape == (4, 2) and not matched.any()


def test_bce_and_focal_losses() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(5, 4), (torch.rand(5, 4) < 0.5).float()
    assert torch.equal(ActionLoss("bce")(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))
    # gamma 0 and no alpha: focal loss is BCE
    torch.testing.assert_close(ActionLoss("focal", focal_gamma=0.0)(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))
    # gamma > 0 down-weights easy examples
    assert ActionLoss("focal", focal_gamma=2.0)(logits, targets) < ActionLoss("bce")(logits, targets)


def test_pose_softmax_loss_and_scores() -> None:
    torch.manual_seed(0)
    loss = ActionLoss("pose_softmax", pose_columns=torch.tensor([0, 1, 2]))
    logits = torch.randn(3, 5)
    targets = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 0, 0, 1], [1, 0, 1, 0, 0]], dtype=torch.float32)
    pose_target = torch.tensor([[0, 1, 0], [0.5, 0, 0.5]])
    expected = F.cross_entropy(logits[[0, 2], :3], pose_target) + F.binary_cross_entropy_with_logits(logits[:, 3:], targets[:, 3:])
    torch.testing.assert_close(loss(logits, targets), expected)
    scores = loss.scores(logits)
    torch.testing.assert_close(scores[:, :3].sum(1), torch.ones(3))
    torch.testing.assert_close(scores[:, 3:], torch.sigmoid(logits[:, 3:]))
    with pytest.raises(ValueError, match="pose classes"):
        ActionLoss("pose_softmax")


def test_schedules() -> None:
    cos = LRSchedule("cosine", total_steps=100, steps_per_epoch=10, warmup_steps=10, warmup_start_factor=0.1, min_factor=0.01)
    assert cos.factor(0) == pytest.approx(0.1) and cos.factor(5) == pytest.approx(0.55)
    assert cos.factor(10) == pytest.approx(1.0) and cos.factor(55) == pytest.approx(0.505)
    assert cos.factor(100) == pytest.approx(0.01) and cos.factor(150) == pytest.approx(0.01)
    step = LRSchedule("step", total_steps=100, steps_per_epoch=10, milestones=(3, 6), gamma=0.1)
    assert [step.factor(s) for s in (0, 29, 30, 59, 60, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    cos.apply(opt, 0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)
    cos.apply(opt, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)  # from initial_lr, not compounding


def test_train_config_rejects_bad_values() -> None:
    with pytest.raises(Exception, match="lr_milestones"):
        TrainConfig(lr_milestones=(5, 2))
    with pytest.raises(Exception):
        TrainConfig(head="transformer")
    assert TrainConfig().config_hash() != TrainConfig(head="acar").config_hash()


def test_rng_state_round_trip() -> None:
    state = RNGState.capture()
    a = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    state.restore()
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
