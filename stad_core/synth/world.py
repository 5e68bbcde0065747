"""The scripted world of one synthetic video: actors with piecewise-linear timelines, objects, events.

Everything here is plain data plus ``state_at`` (an actor's state at any time). The planner
(``planner.py``) writes a ``World``; the renderer draws it and the rules label it. Coordinates are
reference units on a 160x128 canvas (x right, y down, an actor's (x, y) is the point between its
feet), times are seconds from the start of the video.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Literal

from stad_core.synth.classes import Pose

REF_W = 160.0
REF_H = 128.0
HORIZON = 58.0  # wall/floor boundary
FLOOR_Y = (70.0, 122.0)  # feet y range of actors and props (depth band)
SPOT_X = (14.0, 146.0)  # x range of in-frame destinations
OFF_LEFT = -16.0  # x of an actor fully outside the left edge
OFF_RIGHT = REF_W + 16.0
V_WALK = 16.0  # units / second
V_RUN = 32.0

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Segment:
    """One stretch of an actor's timeline: a pose held while moving linearly (x0, y0) -> (x1, y1)."""

    t0: float
    t1: float
    pose: Pose
    x0: float
    y0: float
    x1: float
    y1: float
    facing: int  # +1 looks right, -1 looks left
    wave: bool = False
    reach: bool = False  # arm reaching down (picking up a key)

    def __post_init__(self) -> None:
        if not self.t1 > self.t0:
            raise ValueError(f"segment with non-positive duration [{self.t0}, {self.t1}]")
        if self.facing not in (-1, 1):
            raise ValueError(f"facing must be +-1, got {self.facing}")


@dataclass(frozen=True)
class Identity:
    """Stable appearance of an actor (distinct shirt colours within a video make identities matchable)."""

    shirt: RGB
    pants: RGB
    cap: RGB
    skin: RGB


@dataclass
class Actor:
    actor_id: int  # also the AVA person id
    identity: Identity
    segments: list[Segment] = field(default_factory=list)  # sorted; gaps = not in the scene
    speech: list[tuple[float, float]] = field(default_factory=list)  # speaking intervals [t0, t1)
    role: Literal["regular", "key_picker"] = "regular"

    def __post_init__(self) -> None:
        self._starts: list[float] = []

    def add(self, segment: Segment) -> None:
        if self.segments and segment.t0 < self.segments[-1].t1 - 1e-6:
            raise ValueError(f"actor {self.actor_id}: segment at {segment.t0:.2f} overlaps the previous one")
        self.segments.append(segment)
        self._starts = []

    def segment_at(self, t: float) -> Segment | None:
        if not self._starts or len(self._starts) != len(self.segments):
            self._starts = [s.t0 for s in self.segments]
        i = bisect.bisect_right(self._starts, t) - 1
        if i < 0:
            return None
        seg = self.segments[i]
        return seg if t < seg.t1 else None

    def speaking(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.speech)


@dataclass(frozen=True)
class ActorState:
    """An actor at one instant (what the renderer draws and the rules read)."""

    actor_id: int
    x: float
    y: float
    pose: Pose
    facing: int
    vx: float  # units / second
    vy: float
    wave: bool
    reach: bool
    speaking: bool
    age: float  # seconds since the segment started (drives limb cycles)


def state_at(actor: Actor, t: float) -> ActorState | None:
    """The actor's state at time ``t``, or None when it is not in the scene."""
    seg = actor.segment_at(t)
    if seg is None:
        return None
    span = seg.t1 - seg.t0
    u = (t - seg.t0) / span
    return ActorState(
        actor_id=actor.actor_id,
        x=seg.x0 + (seg.x1 - seg.x0) * u,
        y=seg.y0 + (seg.y1 - seg.y0) * u,
        pose=seg.pose,
        facing=seg.facing,
        vx=(seg.x1 - seg.x0) / span,
        vy=(seg.y1 - seg.y0) / span,
        wave=seg.wave,
        reach=seg.reach,
        speaking=actor.speaking(t),
        age=t - seg.t0,
    )


@dataclass(frozen=True)
class Toss:
    """The ball in flight from ``thrower`` to ``catcher`` during [t0, t1)."""

    t0: float
    t1: float
    thrower: int
    catcher: int


@dataclass(frozen=True)
class KeyItem:
    """A key lying at (x, y) from the start of the video until ``picker`` picks it up at ``pickup``."""

    x: float
    y: float
    picker: int
    pickup: float


@dataclass(frozen=True)
class Prop:
    """A static object standing on the floor at base (x, y); it occludes actors behind it."""

    kind: Literal["crate", "bench", "plant"]
    x: float
    y: float
    w: float
    h: float
    colour: RGB


@dataclass(frozen=True)
class Alarm:
    """A red full-frame flash during [t0, t1)."""

    t0: float
    t1: float


@dataclass(frozen=True)
class Episode:
    """A scripted interaction, recorded for ``events.csv`` (labels come from the rules, not from here)."""

    kind: str
    t0: float
    t1: float
    actors: tuple[int, ...]
    detail: str = ""


@dataclass
class World:
    video_id: str
    seconds: float
    actors: list[Actor]
    tosses: list[Toss]
    keys: list[KeyItem]
    props: list[Prop]
    alarm: Alarm | None
    episodes: list[Episode]
    background_seed: int

    def states(self, t: float) -> list[ActorState]:
        """States of all actors present at ``t`` (in actor order)."""
        out = []
        for actor in self.actors:
            s = state_at(actor, t)
            if s is not None:
                out.append(s)
        return out

    def pickup_time(self, actor_id: int) -> float | None:
        times = [k.pickup for k in self.keys if k.picker == actor_id]
        return min(times) if times else None
