"""The trainer end to end on tiny in-memory banks: exact resume, validation mAP, CSV, ACFB bank."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from stad_core.ava import AvaTable, LabelMap, read_ava_csv
from stad_core.banks import ActorRows, BankSpec, ContextMaps, DictBank
from stad_core.errors import ConfigError, StadError
from stad_core.train import (
    BankSet,
    ClassSpace,
    TrainConfig,
    Trainer,
    Validation,
    infer_actor_context,
    load_checkpoint,
    load_trained_head,
    predict,
    write_predictions_csv,
)

D, C, GRID, D_AC = 12, 8, (4, 4), 16
LABEL_MAP = LabelMap(
    {1: "stand", 2: "sit", 3: "hold", 4: "talk"},
    {1: "PERSON_MOVEMENT", 2: "PERSON_MOVEMENT", 3: "OBJECT_MANIPULATION", 4: "PERSON_INTERACTION"},
)
CLASSES = ClassSpace.from_label_map(LABEL_MAP)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: intra-op threads only add contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class World:
    banks: BankSet
    groundtruth: AvaTable


def make_world(seed: int = 0, videos: int = 2, seconds: int = 8, actors: int = 3) -> World:
    """Keyframes 0..seconds-1; each actor: one pose (1 or 2) and maybe 3/4; features encode labels."""
    rng = np.random.default_rng(seed)
    spec = dict(backbone="tiny", checkpoint_sha256="0" * 64, dtype="float32")
    rows, contexts, ac_rows, gt = {}, {}, {}, []
    for v in range(videos):
        vid = f"vid{v}"
        feats, boxes, times, pids = [], [], [], []
        for t in range(seconds):
            for p in range(actors):
                labels = [1 + int(rng.integers(2))] + [a for a in (3, 4) if rng.random() < 0.5]
                code = np.zeros(D, np.float32)
                code[[a - 1 for a in labels]] = 2.0
                feats.append(code + 0.3 * rng.standard_normal(D).astype(np.float32))
                box = np.array([0.1 + 0.25 * p, 0.2, 0.3 + 0.25 * p, 0.9], np.float32)
                boxes.append(box)
                times.append(float(t))
                pids.append(p)
                gt += [(vid, float(t), box.tolist(), a, p) for a in labels]
        n = len(feats)
        rows[vid] = ActorRows(np.stack(feats), np.stack(boxes), np.ones(n, np.float32), np.array(times), np.array(pids), "gt")
        contexts[vid] = ContextMaps(rng.standard_normal((seconds, C, *GRID)).astype(np.float32), np.arange(seconds, dtype=float))
        ac_rows[vid] = ActorRows(rng.standard_normal((n, D_AC)).astype(np.float32), np.stack(boxes), np.ones(n, np.float32), np.array(times), np.array(pids), "acfb")
    banks = BankSet(
        actors=DictBank(BankSpec(kind="long_term", feature_dim=D, **spec), rows),
        context=DictBank(BankSpec(kind="context", feature_dim=C, context_grid=GRID, **spec), contexts=contexts),
        actor_context=DictBank(BankSpec(kind="actor_context", feature_dim=D_AC, **spec), ac_rows),
    )
    vids, ts, bx, acts, pid = zip(*gt)
    return World(banks, AvaTable.from_arrays(vids, ts, np.array(bx), action_id=acts, person_id=pid))


def config(**overrides) -> TrainConfig:
    values = dict(
        head="linear", num_classes=4, actor_dim=D, context_dim=C, long_term_dim=D, actor_context_dim=D_AC,
        latent_dim=16, reduced_dim=8, relation_dim=8, norm_groups=4, num_layers=1, depth=1,
        window_width=4, window_per_second=2, batch_size=4, epochs=2, lr=0.05, warmup_epochs=0.5,
    )
    values.update(overrides)
    return TrainConfig(**values)


def assert_same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = a.head.state_dict(), b.head.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"weights differ at {k}"
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for i in oa:
        for k, v in oa[i].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(ob[i][k])), f"optimizer state differs at {i}.{k}"
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]


@pytest.mark.parametrize(
    ("overrides", "stop"),
    [
        (dict(head="lfb", fbo="nl", optimizer="sgd", schedule="cosine"), 3),  # mid-epoch
        (dict(head="acfb", optimizer="adamw", lr=3e-3, schedule="step", lr_milestones=(1,)), 4),  # epoch end, pre-val
        (dict(head="acrn", optimizer="sgd", loss="pose_softmax", checkpoint_every=2), 5),
    ],
    ids=["lfb-sgd-cosine", "acfb-adamw-step", "acrn-pose"],
)
def test_resume_is_bit_identical(tmp_path: Path, overrides: dict, stop: int) -> None:
    world = make_world()
    cfg = config(**overrides)
    straight = Trainer(cfg, world.banks, world.groundtruth, CLASSES)
    done = straight.fit()
    assert done.finished and done.global_step == 2 * straight.steps_per_epoch == 8

    first = Trainer(cfg, world.banks, world.groundtruth, CLASSES, checkpoint_path=tmp_path / "ckpt.pt")
    cut = first.fit(stop_after_steps=stop)
    assert not cut.finished and cut.global_step == stop and cut.checkpoint is not None
    del first
    torch.manual_seed(12345)  # whatever ran in between must not matter
    np.random.seed(6789)
    torch.randn(100)

    resumed = Trainer(cfg, world.banks, world.groundtruth, CLASSES, checkpoint_path=tmp_path / "ckpt.pt")
    resumed.load(tmp_path / "ckpt.pt")
    assert (resumed.global_step, resumed.epoch) == (stop, (stop - 1) // resumed.steps_per_epoch)
    assert resumed.fit().finished
    assert_same_state(straight, resumed)
    # a run that is not resumed exactly would differ: a different seed gives other weights
    other = Trainer(cfg.model_copy(update={"seed": 1}), world.banks, world.groundtruth, CLASSES)
    other.fit()
    assert any(not torch.equal(p, q) for p, q in zip(other.head.state_dict().values(), straight.head.state_dict().values()))


def test_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    world = make_world()
    trainer = Trainer(config(), world.banks, world.groundtruth, CLASSES, checkpoint_path=tmp_path / "c.pt")
    trainer.fit(stop_after_steps=1)
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt.global_step == 1 and ckpt.config_hash == config().config_hash()
    other = Trainer(config(lr=0.1), world.banks, world.groundtruth, CLASSES)
    with pytest.raises(ConfigError, match="lr: 0.05 -> 0.1"):
        other.load(tmp_path / "c.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(StadError, match="junk.pt"):
        trainer.load(tmp_path / "junk.pt")


def test_banks_that_do_not_fit_the_head_are_refused() -> None:
    world = make_world()
    with pytest.raises(ConfigError, match="feature_dim 12, config says 13"):
        Trainer(config(actor_dim=13), world.banks, world.groundtruth, CLASSES)
    with pytest.raises(ConfigError, match="needs a context bank"):
        Trainer(config(head="acar"), BankSet(world.banks.actors), world.groundtruth, CLASSES)
    with pytest.raises(ConfigError, match="num_classes"):
        Trainer(config(num_classes=5), world.banks, world.groundtruth, CLASSES)


def test_fit_reports_validation_map_and_writes_ava_csv(tmp_path: Path) -> None:
    train, val = make_world(seed=0), make_world(seed=1)
    validation = Validation(val.banks, val.groundtruth, LABEL_MAP)
    cfg = config(optimizer="adamw", lr=0.02, epochs=4, warmup_epochs=0.0)
    trainer = Trainer(cfg, train.banks, train.groundtruth, CLASSES, validation=validation, checkpoint_path=tmp_path / "c.pt")
    seen: list[tuple[int, int]] = []
    result = trainer.fit(on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (16, 16)
    maps = [h.val_map for h in result.history]
    assert len(maps) == 4 and all(m is not None and 0.0 <= m <= 1.0 for m in maps)
    assert maps[-1] > 0.9 and maps[-1] >= maps[0]  # features encode the labels: it must learn them
    assert set(result.history[-1].val_class_ap) == {1, 2, 3, 4}
    assert load_checkpoint(tmp_path / "c.pt").history[-1].val_map == maps[-1]

    trained = load_trained_head(tmp_path / "c.pt")  # what the evaluate stage does: no trainer, no ground truth
    assert trained.classes == CLASSES and trained.epoch == 4 and not trained.head.training
    predictions = predict(trained.head, val.banks, trained.loss, trained.classes, window_width=4, window_per_second=2)
    direct = predict(trainer.head, val.banks, trainer.loss, CLASSES, window_width=4, window_per_second=2)
    np.testing.assert_array_equal(predictions.scores, direct.scores)
    assert len(predictions) == 2 * 8 * 3
    path = write_predictions_csv(tmp_path / "det.csv", predictions)
    table = read_ava_csv(path, kind="detections")
    assert len(table) == len(predictions) * 4
    assert set(table.action_id.tolist()) == {1, 2, 3, 4}
    np.testing.assert_allclose(np.sort(table.score), np.sort(predictions.scores.ravel()), atol=1e-6)


def test_detected_boxes_take_labels_only_above_iou(tmp_path: Path) -> None:
    """Bank rows that are jittered detections: kept iff IoU with a ground-truth box >= label_iou."""
    world = make_world(videos=1, seconds=2, actors=2)
    rows = world.banks.actors.read_video("vid0")
    boxes = rows.boxes.copy()
    boxes[0] += np.array([0.0, 0.0, 0.004, 0.0], np.float32)  # IoU ~0.98: keeps the labels
    boxes[1] += np.array([0.03, 0.0, 0.03, 0.0], np.float32)  # IoU ~0.74: dropped
    bank = DictBank(world.banks.actors.spec, {"vid0": ActorRows(rows.features, boxes, rows.scores, rows.timestamps, rows.person_ids, "det")})
    trainer = Trainer(config(), BankSet(bank), world.groundtruth, CLASSES)
    kept = {(s.timestamp, tuple(s.rows.tolist())) for s in trainer.samples}
    assert kept == {(0.0, (0,)), (1.0, (0, 1))}


def test_acar_to_actor_context_bank_to_acfb() -> None:
    world = make_world()
    acar = Trainer(config(head="acar", optimizer="adamw", lr=3e-3, epochs=1), world.banks, world.groundtruth, CLASSES)
    acar.fit()
    out = dict(infer_actor_context(acar.head, world.banks))
    assert set(out) == {"vid0", "vid1"}
    rows = world.banks.actors.read_video("vid0")
    got = out["vid0"]
    assert got.features.shape == (len(rows), 16)
    np.testing.assert_array_equal(got.boxes, rows.boxes)
    np.testing.assert_array_equal(got.timestamps, rows.timestamps)
    # the rows equal what the head computes for one keyframe on its own
    batch_rows = world.banks.actors.rows_at("vid0", 3.0)
    from stad_core.heads import HeadInputs

    inputs = HeadInputs(
        torch.from_numpy(batch_rows.features), torch.from_numpy(batch_rows.boxes), torch.zeros(3, dtype=torch.long), 1,
        context=torch.from_numpy(world.banks.context.context("vid0", 3.0))[None],
    )
    acar.head.eval()
    with torch.no_grad():
        expect = acar.head.actor_context_features(inputs).numpy()
    np.testing.assert_allclose(got.features[9:12], expect, rtol=1e-5, atol=1e-6)

    ac_bank = DictBank(BankSpec(kind="actor_context", feature_dim=16, backbone="tiny", checkpoint_sha256="0" * 64, dtype="float32"), out)
    banks = BankSet(world.banks.actors, world.banks.context, ac_bank)
    acfb = Trainer(config(head="acfb", actor_context_dim=16, optimizer="adamw", lr=3e-3, epochs=1), banks, world.groundtruth, CLASSES)
    missing = acfb.head.load_acar_state_dict(acar.head.state_dict())
    assert missing and all(k.startswith(("query_proj.", "bank_proj.", "bank_blocks.")) for k in missing)
    assert acfb.fit().finished
