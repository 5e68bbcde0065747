"""The 12 synthetic action classes, their groups and the numeric constants of their rules.

Distances are in reference units (pixels of the 160x128 reference canvas), times in seconds.
``docs/synthetic.md`` states each rule in words; ``stad_core.synth.rules`` implements them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Group = Literal["SHORT_TERM", "RELATIONAL", "LONG_TERM"]
GROUPS: tuple[Group, ...] = ("SHORT_TERM", "RELATIONAL", "LONG_TERM")

Pose = Literal["stand", "walk", "run", "jump", "sit"]
POSES: tuple[Pose, ...] = ("stand", "walk", "run", "jump", "sit")


@dataclass(frozen=True)
class ActionClass:
    """One class: 1-based AVA id, name, group (the label map's ``label_type``) and its rule in words."""

    label_id: int
    name: str
    group: Group
    rule: str


# Rule constants (reference units / seconds).
LISTEN_RANGE = (26.0, 72.0)  # listener -> speaker distance along the listener's facing direction
LISTEN_DY = 14.0  # max |feet y difference| (same depth band)
WATCH_RANGE = (26.0, 90.0)  # watcher -> jumper distance along the facing direction
WATCH_DY = 20.0
FOLLOW_RANGE = (22.0, 60.0)  # follower -> leader distance along the shared walking direction
FOLLOW_DY = 10.0
HAS_KEY_AGE = (10.0, 30.0)  # has_key iff 10 <= t - pickup < 30
REACH_SECONDS = 2.5  # the picker reaches down this long before the key vanishes (2-3 bank rows show it)
ALERT_DELAY = 2.0  # alerted from alarm end + 2 s (the flash is outside a +-2 s clip) ...
ALERT_SPAN = 30.0  # ... until alarm start + 30 s (the flash is inside the LFB window [t-30, t+30))
ALARM_SECONDS = 3.0  # steady flash: long enough that 2-3 keyframes' clips (and their bank rows) show it
CLIP_GUARD = 2.0  # keyframes whose +-2 s neighbourhood overlaps the alarm flash are excluded
MIN_IN_FRAME = 0.5  # an actor is labelled iff >= 50% of its (unclipped) box lies inside the frame
MIN_UNOCCLUDED = 0.3  # a keyframe is excluded if a labelled actor shows < 30% of its in-frame pixels

CLASSES: tuple[ActionClass, ...] = (
    ActionClass(1, "stand", "SHORT_TERM", "pose: upright, feet in place, not jumping (exactly one pose per actor)"),
    ActionClass(2, "walk", "SHORT_TERM", "pose: moving at walking speed (16 u/s) with a slow leg swing"),
    ActionClass(3, "run", "SHORT_TERM", "pose: moving at running speed (32 u/s), wide leg swing, leaning forward"),
    ActionClass(4, "jump", "SHORT_TERM", "pose: hopping in place, two hops per second, arms up"),
    ActionClass(5, "sit", "SHORT_TERM", "pose: seated on the ground, legs forward"),
    ActionClass(6, "wave", "SHORT_TERM", "one arm raised above the head, swinging (with stand, walk or sit)"),
    ActionClass(
        7,
        "listen_to",
        "RELATIONAL",
        "stands or sits facing another labelled actor that is speaking (speech marks beside its head), "
        f"{LISTEN_RANGE[0]:g}-{LISTEN_RANGE[1]:g} u ahead and within {LISTEN_DY:g} u in depth",
    ),
    ActionClass(
        8,
        "watch",
        "RELATIONAL",
        f"stands or sits facing a labelled actor that is jumping, {WATCH_RANGE[0]:g}-{WATCH_RANGE[1]:g} u ahead "
        f"and within {WATCH_DY:g} u in depth",
    ),
    ActionClass(
        9,
        "follow",
        "RELATIONAL",
        f"walks behind a labelled actor walking the same way, {FOLLOW_RANGE[0]:g}-{FOLLOW_RANGE[1]:g} u ahead "
        f"and within {FOLLOW_DY:g} u in depth",
    ),
    ActionClass(
        10,
        "hand_over",
        "RELATIONAL",
        "is the thrower or the catcher of the ball while it is in flight between two actors",
    ),
    ActionClass(
        11,
        "has_key",
        "LONG_TERM",
        f"picked up a key (magenta diamond) {HAS_KEY_AGE[0]:g}-{HAS_KEY_AGE[1]:g} s ago; the key is then "
        "invisible, so only the actor's own earlier features show it (identity matching)",
    ),
    ActionClass(
        12,
        "alerted",
        "LONG_TERM",
        f"every labelled actor from {ALERT_DELAY:g} s after the end of the red alarm flash until "
        f"{ALERT_SPAN:g} s after its start (scene-level: any actor's features from the flash show it)",
    ),
)

CLASS_BY_NAME: dict[str, ActionClass] = {c.name: c for c in CLASSES}
POSE_IDS: dict[str, int] = {p: CLASS_BY_NAME[p].label_id for p in POSES}
