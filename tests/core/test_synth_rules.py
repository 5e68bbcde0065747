"""The synthetic dataset's class rules, checked on hand-built scenes and on generated worlds."""

from __future__ import annotations

import numpy as np
import pytest

from stad_core.synth import SynthConfig, label_keyframe, plan_world
from stad_core.synth.classes import CLASS_BY_NAME, CLIP_GUARD, HAS_KEY_AGE, LISTEN_RANGE, POSE_IDS
from stad_core.synth.render import KEY, ActorView, render_background, render_frame
from stad_core.synth.rules import relational_labels
from stad_core.synth.world import Actor, Alarm, Identity, KeyItem, Segment, Toss, World

ID = {name: c.label_id for name, c in CLASS_BY_NAME.items()}
IDENT = Identity((40, 90, 230), (30, 30, 90), (210, 30, 30), (235, 195, 160))


def _actor(i: int, x: float, y: float, facing: int, pose: str = "stand", *, to_x: float | None = None,
           speech: list[tuple[float, float]] | None = None, t1: float = 60.0) -> Actor:
    a = Actor(i, IDENT)
    a.add(Segment(0.0, t1, pose, x, y, x if to_x is None else to_x, y, facing))  # type: ignore[arg-type]
    a.speech = speech or []
    return a


def _world(actors: list[Actor], **kw) -> World:
    return World("v", 60.0, actors, kw.get("tosses", []), kw.get("keys", []), [], kw.get("alarm"), [], 0)


def _views(world: World, in_frame: dict[int, float] | None = None, unoccluded: dict[int, float] | None = None):
    in_frame, unoccluded = in_frame or {}, unoccluded or {}
    return [ActorView(a.actor_id, (0.1, 0.1, 0.2, 0.4), in_frame.get(a.actor_id, 1.0), unoccluded.get(a.actor_id, 1.0))
            for a in world.actors]


def _labels(world: World, t: int = 10, **kw) -> dict[int, set[str]]:
    kf = label_keyframe(world, t, _views(world, **kw))
    names = {c.label_id: c.name for c in CLASS_BY_NAME.values()}
    return {pid: {names[i] for i in ids} for pid, ids in kf.actions.items()}


@pytest.mark.parametrize(
    ("distance", "listener_facing", "speaking", "expected"),
    [(40.0, 1, True, True), (LISTEN_RANGE[0] - 2, 1, True, False), (LISTEN_RANGE[1] + 2, 1, True, False),
     (40.0, -1, True, False), (40.0, 1, False, False)],
)
def test_listen_to_needs_a_speaker_in_front_within_range(distance, listener_facing, speaking, expected) -> None:
    listener = _actor(0, 50.0, 100.0, listener_facing)
    speaker = _actor(1, 50.0 + distance, 100.0, -1, speech=[(5.0, 15.0)] if speaking else [])
    labels = _labels(_world([listener, speaker]))
    assert ("listen_to" in labels[0]) is expected
    assert "listen_to" not in labels[1]  # the speaker faces a silent listener
    assert labels[0] & set(POSE_IDS) == {"stand"}


def test_listen_to_ignores_depth_mismatch_walkers_and_unlabelled_speakers() -> None:
    speaker = _actor(1, 90.0, 100.0, -1, speech=[(0.0, 60.0)])
    assert "listen_to" not in _labels(_world([_actor(0, 50.0, 120.0, 1), speaker]))[0]  # 20 u apart in depth
    walker = _actor(0, 50.0, 100.0, 1, "walk", to_x=60.0)
    assert "listen_to" not in _labels(_world([walker, speaker]))[0]
    sitter = _actor(0, 50.0, 100.0, 1, "sit")
    assert "listen_to" in _labels(_world([sitter, speaker]))[0]
    # A speaker less than half inside the frame is not labelled, so it cannot be listened to.
    assert 1 not in _labels(_world([sitter, speaker]), in_frame={1: 0.4})
    assert "listen_to" not in _labels(_world([sitter, speaker]), in_frame={1: 0.4})[0]


def test_watch_needs_a_jumper_in_front() -> None:
    watcher = _actor(0, 40.0, 100.0, 1)
    assert "watch" in _labels(_world([watcher, _actor(1, 100.0, 105.0, -1, "jump")]))[0]
    assert "watch" not in _labels(_world([watcher, _actor(1, 100.0, 105.0, -1, "stand")]))[0]
    assert "watch" not in _labels(_world([_actor(0, 40.0, 100.0, -1), _actor(1, 100.0, 105.0, -1, "jump")]))[0]


def test_follow_needs_a_walker_ahead_going_the_same_way() -> None:
    follower = _actor(0, 30.0, 100.0, 1, "walk", to_x=130.0)
    leader = _actor(1, 70.0, 102.0, 1, "walk", to_x=170.0)
    labels = _labels(_world([follower, leader]), t=1)
    assert "follow" in labels[0] and "follow" not in labels[1]
    oncoming = _actor(1, 70.0, 102.0, -1, "walk", to_x=-30.0)
    assert "follow" not in _labels(_world([follower, oncoming]), t=0)[0]
    standing = _actor(1, 70.0, 102.0, 1, "stand")
    assert "follow" not in _labels(_world([follower, standing]), t=0)[0]


def test_hand_over_labels_thrower_and_catcher_only_during_the_flight() -> None:
    a, b, c = _actor(0, 40.0, 100.0, 1), _actor(1, 95.0, 100.0, -1), _actor(2, 120.0, 80.0, 1)
    world = _world([a, b, c], tosses=[Toss(9.5, 11.0, 0, 1)])
    labels = _labels(world, t=10)
    assert "hand_over" in labels[0] and "hand_over" in labels[1] and "hand_over" not in labels[2]
    assert all("hand_over" not in s for s in _labels(world, t=11).values())  # [t0, t1) is half-open


def test_has_key_exactly_10_to_30_s_after_the_pickup() -> None:
    world = _world([_actor(0, 40.0, 100.0, 1), _actor(1, 100.0, 100.0, 1)], keys=[KeyItem(30.0, 101.0, 0, 5.0)])
    for t, expected in ((5, False), (14, False), (15, True), (34, True), (35, False)):
        labels = _labels(world, t=t)
        assert ("has_key" in labels[0]) is expected, t
        assert "has_key" not in labels[1]


def test_alerted_and_alarm_exclusions() -> None:
    world = _world([_actor(0, 40.0, 100.0, 1)], alarm=Alarm(1.5, 2.5))
    for t, alerted, excluded in ((3, False, True), (4, False, True), (5, True, False), (31, True, False), (32, False, False)):
        kf = label_keyframe(world, t, _views(world))
        assert (ID["alerted"] in kf.actions[0]) is alerted, t
        assert (kf.excluded == "alarm_flash") is excluded, t


def test_occluded_actor_excludes_the_keyframe_but_keeps_its_labels() -> None:
    world = _world([_actor(0, 40.0, 100.0, 1), _actor(1, 100.0, 100.0, 1)])
    kf = label_keyframe(world, 10, _views(world, unoccluded={1: 0.1}))
    assert kf.excluded == "occluded:1" and set(kf.actions) == {0, 1}
    assert label_keyframe(world, 10, _views(world)).excluded is None


# ---- generated worlds -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled_worlds():
    """Plans of 4 one-minute videos over two seeds with every keyframe labelled (no encoding)."""
    out = []
    for seed in (0, 1):
        cfg = SynthConfig(videos=2, seconds=60, seed=seed)
        for i in range(cfg.videos):
            world = plan_world(cfg, i)
            bg = render_background(world.background_seed, cfg.width, cfg.height)
            kfs = []
            for t in cfg.keyframe_seconds:
                image, views = render_frame(world, bg, float(t), track=True)
                kfs.append((label_keyframe(world, t, views), image, views))
            out.append((cfg, world, bg, kfs))
    return out


def test_every_labelled_actor_has_one_pose_and_a_visible_box(labelled_worlds) -> None:
    pose_ids = set(POSE_IDS.values())
    for _, _, _, kfs in labelled_worlds:
        for kf, _, views in kfs:
            by_id = {v.actor_id: v for v in views}
            assert {a for a, v in by_id.items() if v.in_frame >= 0.5 and v.box is not None} == set(kf.actions)
            for person, acts in kf.actions.items():
                assert len(pose_ids & set(acts)) == 1
                x1, y1, x2, y2 = kf.boxes[person]
                assert 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0


def test_has_key_cause_is_10_to_30_s_away_and_out_of_sight(labelled_worlds) -> None:
    seen = 0
    for cfg, world, bg, kfs in labelled_worlds:
        pickups = {k.picker: k.pickup for k in world.keys}
        for kf, _, _ in kfs:
            for person, acts in kf.actions.items():
                age = kf.t - pickups[person] if person in pickups else None
                if ID["has_key"] in acts:
                    seen += 1
                    assert age is not None and HAS_KEY_AGE[0] <= age < HAS_KEY_AGE[1]
                    # Nothing in the +-2 s clip shows the key: it is gone from every frame.
                    for dt in (-CLIP_GUARD, CLIP_GUARD) if seen % 4 == 1 else ():
                        frame, _ = render_frame(world, bg, kf.t + float(dt))
                        assert not np.all(frame == np.array(KEY, np.uint8), axis=-1).any()
                if age is not None:
                    # A picker is never on screen while its pickup is recent but outside the clip.
                    assert not (CLIP_GUARD + 1.0 < age < HAS_KEY_AGE[0]), (world.video_id, kf.t, age)
    assert seen > 0


def test_alerted_only_after_an_alarm_that_is_outside_the_clip(labelled_worlds) -> None:
    for _, world, _, kfs in labelled_worlds:
        for kf, _, _ in kfs:
            alerted = [p for p, acts in kf.actions.items() if ID["alerted"] in acts]
            if world.alarm is None:
                assert not alerted
                continue
            a = world.alarm
            expected = a.t1 + 2.0 <= kf.t < a.t0 + 30.0
            assert (set(alerted) == set(kf.actions)) if expected else not alerted
            if alerted:
                assert kf.t - CLIP_GUARD >= a.t1


def test_staged_episodes_produce_their_relational_labels(labelled_worlds) -> None:
    found = {"listen_to": 0, "hand_over": 0, "follow": 0}
    for _, world, _, kfs in labelled_worlds:
        by_t = {kf.t: kf for kf, _, _ in kfs}
        for toss in world.tosses:
            for t in range(int(np.ceil(toss.t0)), int(np.ceil(toss.t1))):
                kf = by_t.get(t)
                if kf and toss.thrower in kf.actions and toss.catcher in kf.actions:
                    found["hand_over"] += 1
                    assert ID["hand_over"] in kf.actions[toss.thrower] and ID["hand_over"] in kf.actions[toss.catcher]
        for ep in world.episodes:
            if ep.kind not in ("conversation", "follow"):
                continue
            a, b = ep.actors
            for t in range(int(np.ceil(ep.t0 + 0.5)), int(ep.t1 - 0.5)):
                kf = by_t.get(t)
                if not kf or a not in kf.actions or b not in kf.actions:
                    continue
                if ep.kind == "follow":  # actors[0] follows actors[1]
                    found["follow"] += 1
                    assert ID["follow"] in kf.actions[a]
                else:
                    for listener, speaker in ((a, b), (b, a)):
                        if world.actors[speaker].speaking(float(t)):
                            found["listen_to"] += 1
                            assert ID["listen_to"] in kf.actions[listener]
    assert all(found.values()), found


def test_relational_negatives_look_like_positives(labelled_worlds) -> None:
    """Still actors facing a nearby actor occur both with and without a speaker/jumper there, so the
    actor's own appearance cannot decide listen_to/watch."""
    pos, neg = 0, 0
    for _, world, _, kfs in labelled_worlds:
        for kf, _, _ in kfs:
            states = {s.actor_id: s for s in world.states(float(kf.t)) if s.actor_id in kf.actions}
            for a in states.values():
                if a.pose not in ("stand", "sit"):
                    continue
                faced = [
                    b for b in states.values()
                    if b is not a and LISTEN_RANGE[0] <= (b.x - a.x) * a.facing <= LISTEN_RANGE[1] and abs(b.y - a.y) <= 14.0
                ]
                if not faced:
                    continue
                rel = relational_labels(a, [b for b in states.values() if b is not a], world, float(kf.t))
                if {"listen_to", "watch"} & rel:
                    pos += 1
                else:
                    neg += 1
    assert pos > 10 and neg > 10, (pos, neg)


def test_boxes_are_pixel_exact() -> None:
    actor = _actor(0, 70.0, 100.0, 1, "walk", to_x=90.0)
    world = _world([actor])
    bg = np.full((128, 160, 3), 128, np.uint8)
    image, views = render_frame(world, bg, 3.3, track=True)
    diff = np.any(image != bg, axis=-1)
    rows, cols = np.flatnonzero(diff.any(1)), np.flatnonzero(diff.any(0))
    expected = (cols[0] / 160, rows[0] / 128, (cols[-1] + 1) / 160, (rows[-1] + 1) / 128)
    assert views[0].box == pytest.approx(expected) and views[0].in_frame == 1.0 and views[0].unoccluded == 1.0


def test_actor_leaving_the_frame_stops_being_labelled() -> None:
    world = _world([_actor(0, 150.0, 100.0, 1, "walk", to_x=190.0, t1=4.0)])  # x = 150 + 10 t
    bg = np.zeros((128, 160, 3), np.uint8)
    fractions = [render_frame(world, bg, t, track=True)[1][0].in_frame for t in (0.0, 1.0, 2.0, 3.0)]
    assert fractions[0] == 1.0 and fractions[-1] == 0.0 and all(np.diff(fractions) <= 0)
    labelled = [0 in label_keyframe(world, t, render_frame(world, bg, float(t), track=True)[1]).actions for t in range(4)]
    assert labelled == [f >= 0.5 for f in fractions]


@pytest.mark.parametrize("seconds", [12, 17, 31, 90])
def test_planner_handles_any_valid_size(seconds: int) -> None:
    for seed in range(4):
        for lo, hi in ((2, 2), (3, 8), (8, 8)):
            cfg = SynthConfig(seconds=seconds, seed=seed, actors_min=lo, actors_max=hi, keys_per_video=2, videos=2)
            world = plan_world(cfg, seed % 2)
            assert lo <= len(world.actors) <= hi
            assert len({a.identity.shirt for a in world.actors}) == len(world.actors)  # identities distinct
            for actor in world.actors:
                assert actor.segments, actor.actor_id
                for s0, s1 in zip(actor.segments, actor.segments[1:], strict=False):
                    assert s1.t0 >= s0.t1 - 1e-6
                    if actor.role == "regular":  # on stage without a break from entry to exit
                        assert s1.t0 == pytest.approx(s0.t1, abs=1e-6)
                    if s1.t0 - s0.t1 < 1e-6:  # contiguous segments never teleport
                        assert (s0.x1, s0.y1) == pytest.approx((s1.x0, s1.y0), abs=1e-6)
