"""Ground-truth rules: the labels of every visible actor at a keyframe, derived from world state.

The rules read only the world (states, tosses, key pickups, alarm) and the renderer's visibility
measures, never the planner's intentions, so a label is present iff its rule holds. Each rule is
documented in ``docs/synthetic.md`` with the same constants (``classes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from stad_core.synth.classes import (
    ALERT_DELAY,
    ALERT_SPAN,
    CLASS_BY_NAME,
    CLIP_GUARD,
    FOLLOW_DY,
    FOLLOW_RANGE,
    HAS_KEY_AGE,
    LISTEN_DY,
    LISTEN_RANGE,
    MIN_IN_FRAME,
    MIN_UNOCCLUDED,
    POSE_IDS,
    WATCH_DY,
    WATCH_RANGE,
)
from stad_core.synth.render import ActorView
from stad_core.synth.world import ActorState, World

ID = {name: c.label_id for name, c in CLASS_BY_NAME.items()}


@dataclass(frozen=True)
class KeyframeLabels:
    """Labels of one keyframe: per labelled actor its pixel-exact box and sorted action ids."""

    t: int
    boxes: dict[int, tuple[float, float, float, float]]  # actor id -> normalised x1, y1, x2, y2
    actions: dict[int, tuple[int, ...]]  # actor id -> sorted action ids (>= 1: its pose)
    excluded: str | None  # reason the keyframe is excluded from evaluation, or None


def _ahead(a: ActorState, b: ActorState, direction: int, rng: tuple[float, float], max_dy: float) -> bool:
    """Whether b is ``rng[0]..rng[1]`` units ahead of a along ``direction`` and within ``max_dy`` in depth."""
    d = (b.x - a.x) * direction
    return rng[0] <= d <= rng[1] and abs(b.y - a.y) <= max_dy


def relational_labels(a: ActorState, others: list[ActorState], world: World, t: float) -> set[str]:
    """Relational classes of actor ``a`` given the labelled ``others`` at time ``t``."""
    out: set[str] = set()
    still = a.pose in ("stand", "sit")
    for b in others:
        if still and b.speaking and _ahead(a, b, a.facing, LISTEN_RANGE, LISTEN_DY):
            out.add("listen_to")
        if still and b.pose == "jump" and _ahead(a, b, a.facing, WATCH_RANGE, WATCH_DY):
            out.add("watch")
        if a.pose == "walk" and b.pose == "walk" and a.vx != 0.0 and b.vx != 0.0:
            direction = 1 if a.vx > 0 else -1
            if (b.vx > 0) == (a.vx > 0) and _ahead(a, b, direction, FOLLOW_RANGE, FOLLOW_DY):
                out.add("follow")
    labelled = {b.actor_id for b in others}
    for toss in world.tosses:
        if toss.t0 <= t < toss.t1 and a.actor_id in (toss.thrower, toss.catcher):
            partner = toss.catcher if a.actor_id == toss.thrower else toss.thrower
            if partner in labelled:
                out.add("hand_over")
    return out


def long_term_labels(a: ActorState, world: World, t: float) -> set[str]:
    out: set[str] = set()
    pickup = world.pickup_time(a.actor_id)
    if pickup is not None and HAS_KEY_AGE[0] <= t - pickup < HAS_KEY_AGE[1]:
        out.add("has_key")
    alarm = world.alarm
    if alarm is not None and alarm.t1 + ALERT_DELAY <= t < alarm.t0 + ALERT_SPAN:
        out.add("alerted")
    return out


def short_term_labels(a: ActorState) -> set[str]:
    out = {a.pose}
    if a.wave:
        out.add("wave")
    return out


def exclusion_reason(world: World, t: float, views: list[ActorView]) -> str | None:
    """Why keyframe ``t`` is excluded (alarm flash within +-2 s, or a labelled actor mostly hidden)."""
    alarm = world.alarm
    if alarm is not None and alarm.t0 - CLIP_GUARD < t < alarm.t1 + CLIP_GUARD:
        return "alarm_flash"
    hidden = [v.actor_id for v in views if v.in_frame >= MIN_IN_FRAME and v.unoccluded < MIN_UNOCCLUDED]
    if hidden:
        return "occluded:" + "+".join(str(i) for i in hidden)
    return None


def label_keyframe(world: World, t: int, views: list[ActorView]) -> KeyframeLabels:
    """Apply every rule at keyframe second ``t`` (``views`` from ``render_frame(..., track=True)``)."""
    states = {s.actor_id: s for s in world.states(float(t))}
    visible = [v for v in views if v.in_frame >= MIN_IN_FRAME and v.box is not None]
    labelled = [states[v.actor_id] for v in visible]
    boxes: dict[int, tuple[float, float, float, float]] = {}
    actions: dict[int, tuple[int, ...]] = {}
    for v, a in zip(visible, labelled, strict=True):
        others = [b for b in labelled if b.actor_id != a.actor_id]
        names = short_term_labels(a) | relational_labels(a, others, world, float(t)) | long_term_labels(a, world, float(t))
        boxes[a.actor_id] = tuple(float(c) for c in v.box)  # type: ignore[assignment, union-attr]
        actions[a.actor_id] = tuple(sorted(ID[n] for n in names))
    assert all(sum(1 for i in acts if i in POSE_IDS.values()) == 1 for acts in actions.values())
    return KeyframeLabels(t, boxes, actions, exclusion_reason(world, float(t), views))
