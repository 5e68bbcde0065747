"""Backbone fine-tuning: learns, freezes BN on request, resumes exactly after a kill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stad_core.ava.table import AvaTable
from stad_core.finetune import (
    ActorClassifier,
    ActorSample,
    FinetuneConfig,
    actor_samples,
    finetune_backbone,
    jitter_boxes,
    predict_actors,
)
from stad_core.models.backbones import build_backbone
from stad_core.video import encode_video

# MMAction2 conventions (undilated res5): dilated 3D conv backward is slow on CPU.
TINY = dict(width=8, blocks=(1, 1, 1, 1), alpha=4, family="mmaction2")
CFG = FinetuneConfig(num_frames=8, stride=1, short_side=32, epochs=2, batch_size=2, lr=0.05, warmup_steps=0,
                     box_jitter=0.05, hflip=True)


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[ActorSample]:
    """Two videos: a red block (class 0) or a blue one (class 1); flip-invariant classes."""
    root = tmp_path_factory.mktemp("ft")
    out = []
    for v in range(2):
        frames = np.full((24, 32, 48, 3), 20, np.uint8)
        x = 4 + 20 * v
        frames[:, 6:28, x:x + 16] = (230, 30, 30) if v == 0 else (30, 30, 230)
        path = encode_video(root / f"b{v}.mp4", frames, fps=8)
        box = np.array([[x / 48, 6 / 32, (x + 16) / 48, 28 / 32]], np.float32)
        labels = np.eye(2, dtype=np.float32)[[v]]
        out += [ActorSample(str(path), f"b{v}", t, box, labels) for t in (1, 2)]
    return out


def _model(seed: int = 0) -> ActorClassifier:
    torch.manual_seed(seed)
    return ActorClassifier(build_backbone("slowfast_r50", **TINY), num_classes=2, dropout=0.2)


def test_training_learns_the_classes(samples) -> None:
    model = _model()
    result = finetune_backbone(model, samples, CFG.model_copy(update={"epochs": 8, "lr": 0.02}))
    assert result.epochs_run == 8 and len(result.history) == 8
    assert result.history[-1] < 0.1 * result.history[0]  # fits the training actors (BCE -> ~0)
    scores = predict_actors(model, samples, CFG)
    assert [s.shape for s in scores] == [(1, 2)] * 4
    assert all(((s >= 0) & (s <= 1)).all() for s in scores)


class _Kill(Exception):
    pass


def test_killed_run_resumes_exactly(samples, tmp_path: Path) -> None:
    ref = _model()
    finetune_backbone(ref, samples, CFG)
    model = _model()
    ckpt = tmp_path / "ft.pt"

    def die_in_epoch_two(done: int, total: int) -> None:
        if done == 3:  # 2 steps per epoch: killed mid-way through the second epoch
            raise _Kill

    with pytest.raises(_Kill):
        finetune_backbone(model, samples, CFG, checkpoint=ckpt, on_progress=die_in_epoch_two)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1
    resumed = _model(seed=123)  # a fresh process: different random state until the checkpoint loads
    result = finetune_backbone(resumed, samples, CFG, checkpoint=ckpt)
    assert result.epochs_run == 1 and len(result.history) == 2
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(ValueError, match="different settings"):
        finetune_backbone(_model(), samples, CFG.model_copy(update={"lr": 0.1}), checkpoint=ckpt)


def test_frozen_batchnorm(samples) -> None:
    model = _model()
    bn = model.backbone.slow.stem.bn
    before = (bn.running_mean.clone(), bn.weight.clone())
    finetune_backbone(model, samples[:2], CFG.model_copy(update={"epochs": 1, "frozen_bn": True}))
    assert not bn.weight.requires_grad
    torch.testing.assert_close(bn.running_mean, before[0])
    torch.testing.assert_close(bn.weight, before[1])
    assert not torch.equal(model.classifier.weight, torch.zeros_like(model.classifier.weight))


def test_jitter_boxes() -> None:
    gen = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.8], [0.0, 0.0, 1.0, 1.0]])
    out = jitter_boxes(boxes, 0.1, gen)
    assert ((out >= 0) & (out <= 1)).all() and (out[:, 2:] >= out[:, :2]).all()
    assert (out - boxes).abs()[0].max() <= 0.1 * 0.6 + 1e-6 and not torch.equal(out, boxes)
    assert torch.equal(jitter_boxes(boxes, 0.0, gen), boxes)


def test_actor_samples_groups_boxes_and_labels() -> None:
    table = AvaTable.from_arrays(
        ["a", "a", "a", "b"], [3, 3, 3, 4],
        [[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5], [0.6, 0.1, 0.9, 0.9], [0.2, 0.2, 0.4, 0.4]],
        action_id=[5, 7, 9, 5], person_id=[0, 0, 1, 0],
    )
    out = actor_samples(table, {"a": "a.mp4", "b": "b.mp4"}, action_ids=[5, 7])
    assert [(s.video_id, s.timestamp) for s in out] == [("a", 3), ("b", 4)]
    assert out[0].boxes.shape == (2, 4)
    np.testing.assert_array_equal(out[0].labels, [[1, 1], [0, 0]])  # action 9 is not a class here
    np.testing.assert_array_equal(out[1].labels, [[1, 0]])


def test_warmup_steps_schedule_and_count() -> None:
    """The shared step of fine-tuning and detector training: lr = base * min(1, (step + 1) / W)."""
    from stad_core.train.schedule import WarmupSteps, warmup_factor

    assert [warmup_factor(s, 3) for s in range(5)] == [1 / 3, 2 / 3, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([param], lr=0.3)
    seen: list[tuple[float, tuple[int, int]]] = []
    steps = WarmupSteps(opt, 0.3, 3, total=6, step=1,
                        on_progress=lambda d, t: seen.append((opt.param_groups[0]["lr"], (d, t))))
    values = [steps(lambda: (param ** 2).sum()) for _ in range(3)]
    assert steps.step == 4 and [p for _, p in seen] == [(2, 6), (3, 6), (4, 6)]
    assert [lr for lr, _ in seen] == [0.3 * (2 / 3), 0.3 * 1.0, 0.3 * 1.0]  # resumed at step 1
    assert values[0] == 2.0 and values[1] < values[0]


def test_warmup_steps_cosine_decays_to_zero_by_the_last_step() -> None:
    """schedule: cosine -- the warm-up as before, then half a cosine from the base rate to 0 at ``total``."""
    import math

    from stad_core.train.schedule import WarmupSteps

    param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([param], lr=1.0)
    lrs: list[float] = []
    steps = WarmupSteps(opt, 1.0, 2, total=6, cosine=True, on_progress=lambda d, t: lrs.append(opt.param_groups[0]["lr"]))
    for _ in range(6):
        steps(lambda: (param ** 2).sum())
    expected = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert lrs == pytest.approx(expected) and lrs[2] == 1.0 and lrs[-1] < lrs[-2] < lrs[2]


def test_appearance_targets_are_box_and_frame_mean_colours_of_the_key_frame() -> None:
    from stad_core.models.actor_features import appearance_dim, appearance_targets

    clips = torch.zeros(2, 3, 10, 20, 3, dtype=torch.uint8)
    clips[0, 1, :, :10] = torch.tensor([255, 0, 0], dtype=torch.uint8)  # key frame (index 1): left half red
    clips[0, 0] = 255  # other frames do not count
    clips[1, 1, 5:, :, 2] = 255  # bottom half blue
    boxes = [torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.5, 1.0, 1.0]])]
    out = appearance_targets(clips, boxes)
    assert out.shape == (3, appearance_dim(1)) == (3, 6)
    torch.testing.assert_close(out[0], torch.tensor([1.0, 0, 0, 0.5, 0, 0]))
    torch.testing.assert_close(out[1], torch.tensor([0.0, 0, 0, 0.5, 0, 0]))
    torch.testing.assert_close(out[2], torch.tensor([0.0, 0, 1, 0, 0, 0.5]))
    # a 2x2 layout: the whole-frame box of clip 0 is red on its left cells only
    grid = appearance_targets(clips[:1], [torch.tensor([[0.0, 0.0, 1.0, 1.0]])], grid=2)
    assert grid.shape == (1, appearance_dim(2)) == (1, 15)
    torch.testing.assert_close(grid[0, :12], torch.tensor([1.0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]))


def test_finetuning_with_the_appearance_and_relation_losses_trains_their_layers(samples: list[ActorSample]) -> None:
    cfg = CFG.model_copy(update={"appearance_weight": 5.0, "epochs": 1})
    torch.manual_seed(0)
    model = ActorClassifier(build_backbone("slowfast_r50", **TINY), num_classes=2, dropout=0.2, appearance=6,
                            relation=8)
    before = model.appearance.weight.detach().clone(), model.relation.classifier.weight.detach().clone()
    finetune_backbone(model, samples, cfg)
    assert not torch.equal(model.appearance.weight, before[0])
    assert not torch.equal(model.relation.classifier.weight, before[1])
    assert predict_actors(model, samples, cfg)[0].shape[1] == 2  # prediction reads the action path only
