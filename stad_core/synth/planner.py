"""Scripts one synthetic video: who is where, doing what, when.

The planner only *stages* situations (conversations, ball tosses, following, watching a jumper,
silent face-to-face decoys, key pickups, an opening alarm) and fills the rest with solo activity.
Labels are never taken from the script: ``rules.py`` derives them from the resulting states, so an
accidental configuration (a stranger standing in front of a speaker) is labelled like a staged one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stad_core.synth.classes import ALARM_SECONDS, LISTEN_RANGE, REACH_SECONDS
from stad_core.synth.config import SynthConfig
from stad_core.synth.world import (
    FLOOR_Y,
    OFF_LEFT,
    OFF_RIGHT,
    REF_W,
    RGB,
    SPOT_X,
    V_RUN,
    V_WALK,
    Actor,
    Alarm,
    Episode,
    Identity,
    KeyItem,
    Prop,
    Segment,
    Toss,
    World,
)

SHIRTS: tuple[RGB, ...] = (
    (40, 90, 230),  # blue
    (30, 170, 60),  # green
    (235, 210, 40),  # yellow
    (40, 200, 220),  # cyan
    (140, 60, 200),  # purple
    (140, 80, 30),  # brown
    (240, 240, 240),  # white
    (25, 25, 25),  # black
    (240, 130, 170),  # pink
)
PANTS: tuple[RGB, ...] = ((30, 30, 90), (20, 20, 20), (110, 110, 110), (170, 150, 100), (90, 50, 20))
CAPS: tuple[RGB, ...] = ((210, 30, 30), (245, 245, 245), (30, 120, 30), (30, 60, 200), (230, 200, 20), (15, 15, 15))
SKINS: tuple[RGB, ...] = ((235, 195, 160), (200, 150, 110), (140, 95, 60))
PROP_COLOURS: tuple[RGB, ...] = ((150, 110, 60), (90, 90, 100), (120, 70, 50), (60, 100, 60))

# Staged episodes are drawn from shuffled rounds of this multiset, so every video gets a balanced
# mix (a short video gets the first few of a round) instead of an unlucky draw without any "show".
EPISODE_ROUND = ("conversation", "show", "follow", "toss", "idle_pair")

Point = tuple[float, float]


@dataclass(frozen=True)
class _Staging:
    """Where two actors must be for an episode, for how long, and how to write their timelines."""

    starts: tuple[Point, Point]
    ends: tuple[Point, Point]
    facings: tuple[int, int]
    duration: float
    build: Callable[[int, int, float], None]  # (actor a, actor b, start time) -> None
    detail: str


def _dist(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _in_frame(p: Point) -> bool:
    return SPOT_X[0] - 4 <= p[0] <= SPOT_X[1] + 4


class _Planner:
    def __init__(self, config: SynthConfig, index: int) -> None:
        self.cfg = config
        self.index = index
        self.seconds = float(config.seconds)
        self.rng = np.random.default_rng([config.seed, index])
        self.actors: list[Actor] = []
        self.tosses: list[Toss] = []
        self.keys: list[KeyItem] = []
        self.episodes: list[Episode] = []
        # Per actor: when the script is free again, where it is then, its facing, and its window of
        # availability for staged episodes.
        self.free_t: list[float] = []
        self.cursor: list[float] = []  # the actor's timeline is written up to this time
        self.pos: list[Point] = []
        self.facing: list[int] = []
        self.avail: list[tuple[float, float]] = []
        self.exit_t: list[float] = []
        self.queue: list[str] = []  # episode kinds still to stage in this round

    # ---- random helpers -------------------------------------------------------------------
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, max(lo, hi)))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def spot(self) -> Point:
        return (self.u(*SPOT_X), self.u(*FLOOR_Y))

    # ---- timeline building ----------------------------------------------------------------
    def _hold(self, k: int, t0: float, t1: float, pose: str, p: Point, facing: int, **flags: bool) -> None:
        if t1 - t0 > 1e-6:
            self.actors[k].add(Segment(t0, t1, pose, p[0], p[1], p[0], p[1], facing, **flags))  # type: ignore[arg-type]

    def _move(self, k: int, t0: float, a: Point, b: Point, speed: float, pose: str, wave: bool = False) -> float:
        """Move from a to b at ``speed``; returns the arrival time."""
        d = _dist(a, b)
        if d < 0.5:
            return t0
        facing = 1 if b[0] >= a[0] else -1
        if abs(b[0] - a[0]) < 0.5:
            facing = self.facing[k]
        t1 = t0 + d / speed
        self.actors[k].add(Segment(t0, t1, pose, a[0], a[1], b[0], b[1], facing, wave=wave))  # type: ignore[arg-type]
        self.facing[k] = facing
        return t1

    def _fill(self, k: int, t0: float, p0: Point, t1: float, p1: Point, end_facing: int | None) -> None:
        """Solo activity from (t0, p0) that ends at p1 by t1 (then waits there facing ``end_facing``)."""
        t, p = t0, p0
        for _ in range(200):
            slack = t1 - t - _dist(p, p1) / V_WALK
            if slack < 1.2:
                break
            if not _in_frame(p):
                q = self.spot()
                if (_dist(p, q) / V_WALK + _dist(q, p1) / V_WALK) > t1 - t - 0.2:
                    break
                t, p = self._move(k, t, p, q, V_WALK, "walk"), q
                continue
            kind = self.rng.choice(["stand", "sit", "walk", "run", "jump"], p=[0.26, 0.14, 0.26, 0.2, 0.14])
            if kind in ("walk", "run"):
                q = self.spot()
                speed = V_WALK if kind == "walk" else V_RUN
                if _dist(p, q) < (15 if kind == "walk" else 45):
                    continue
                if _dist(p, q) / speed + _dist(q, p1) / V_WALK > t1 - t - 0.2:
                    continue
                t, p = self._move(k, t, p, q, speed, kind, wave=kind == "walk" and self.chance(0.12)), q
                continue
            lo, hi = {"stand": (1.0, 4.0), "sit": (2.0, 6.0), "jump": (1.5, 4.0)}[kind]
            dur = min(self.u(lo, hi), slack - 0.2)
            if dur < 0.8:
                continue
            if self.chance(0.3):
                self.facing[k] = -self.facing[k]
            wave = kind != "jump" and self.chance(0.3 if kind == "stand" else 0.2)
            self._hold(k, t, t + dur, kind, p, self.facing[k], wave=wave)
            t += dur
        t = self._move(k, t, p, p1, V_WALK, "walk")
        if end_facing is not None:
            self.facing[k] = end_facing
        self._hold(k, t, t1, "stand", p1, self.facing[k])

    # ---- cast -----------------------------------------------------------------------------
    def cast(self) -> None:
        cfg = self.cfg
        n = int(self.rng.integers(cfg.actors_min, cfg.actors_max + 1))
        shirts = self.rng.permutation(len(SHIRTS))[:n]
        n_keys = min(cfg.keys_per_video, max(n - 2, 0)) if self.seconds - 14.0 >= 3.5 else 0
        for k in range(n):
            identity = Identity(
                shirt=SHIRTS[int(shirts[k])],
                pants=PANTS[int(self.rng.integers(len(PANTS)))],
                cap=CAPS[int(self.rng.integers(len(CAPS)))],
                skin=SKINS[int(self.rng.integers(len(SKINS)))],
            )
            role = "key_picker" if 1 <= k <= n_keys else "regular"
            self.actors.append(Actor(k, identity, role=role))  # type: ignore[arg-type]
            self.facing.append(1 if self.chance(0.5) else -1)
            # Actor 0 is on screen from the start (it witnesses an opening alarm).
            if k == 0 or (role == "regular" and self.chance(0.6)):
                enter, start = 0.0, self.spot()
            else:
                enter = self.u(0.0, 0.5 * self.seconds)
                start = (OFF_LEFT if self.chance(0.5) else OFF_RIGHT, self.u(*FLOOR_Y))
            exit_t = self.seconds + 1.0
            earliest_exit = max(enter + 15.0, 0.5 * self.seconds)
            if k != 0 and self.chance(0.35) and earliest_exit < self.seconds - 1.0:
                exit_t = self.u(earliest_exit, self.seconds - 1.0)
            self.free_t.append(enter)
            self.cursor.append(enter)
            self.pos.append(start)
            self.avail.append((enter, exit_t))
            self.exit_t.append(exit_t)
        for k in range(1, 1 + n_keys):
            self._key_pickup(k)

    def _key_pickup(self, k: int) -> None:
        """Enter near the key, pick it up, leave, come back 10.5-12.5 s later (see has_key)."""
        left = self.chance(0.5)
        side = 1 if left else -1  # walking direction into the frame
        edge = OFF_LEFT if left else OFF_RIGHT
        key_x = (22.0 + self.u(0, 8)) if left else REF_W - 22.0 - self.u(0, 8)
        y = self.u(*FLOOR_Y)
        stand = (key_x - side * 7.0, y)
        approach = _dist((edge, y), stand) / V_WALK
        earliest = REACH_SECONDS + approach + 0.3
        latest = self.seconds - 14.0
        others = [key.pickup for key in self.keys]
        for _ in range(20):
            pickup = self.u(max(earliest, 3.5), max(latest, earliest + 0.01))
            if all(abs(pickup - o) > 4.0 for o in others):
                break
        enter = pickup - REACH_SECONDS - approach
        self.facing[k] = side
        t = self._move(k, enter, (edge, y), stand, V_WALK, "walk")
        self._hold(k, t, pickup, "stand", stand, side, reach=True)
        self._move(k, pickup, stand, (edge, y), V_WALK, "walk")
        self.keys.append(KeyItem(key_x, y + 1.0, k, pickup))
        back = pickup + self.u(10.5, 12.5) - 1.0  # starts walking in 1 s before it is half visible
        self.free_t[k] = back
        self.cursor[k] = back  # off screen until then
        self.pos[k] = (OFF_LEFT if self.chance(0.5) else OFF_RIGHT, self.u(*FLOOR_Y))
        self.avail[k] = (back, self.exit_t[k])
        if self.exit_t[k] <= back + 5.0:
            self.exit_t[k] = self.seconds + 1.0
            self.avail[k] = (back, self.exit_t[k])
        self.episodes.append(Episode("key_pickup", enter, pickup, (k,), f"key at x={key_x:.1f} y={y + 1:.1f}"))

    # ---- staged episodes ------------------------------------------------------------------
    def _near(self, hint: Point, spread_x: float, lo: float, hi: float) -> float:
        """An x near ``hint`` (cuts walking time to the episode), kept inside [lo, hi]."""
        x = hint[0] if _in_frame(hint) else self.u(lo, hi)
        return float(np.clip(x + self.u(-spread_x, spread_x), lo, hi))

    def _pair_spots(self, d_lo: float, d_hi: float, hint: Point) -> tuple[Point, Point, float]:
        d = self.u(d_lo, d_hi)
        xc = self._near(hint, 20.0, SPOT_X[0] + d / 2, SPOT_X[1] - d / 2)
        y = float(np.clip(hint[1] + self.u(-12.0, 12.0), *FLOOR_Y))
        return (xc - d / 2, y), (xc + d / 2, y), d

    def _try_episode(self, t: float) -> None:
        free = [
            k
            for k in range(len(self.actors))
            if self.free_t[k] <= t and self.avail[k][0] <= t and t < self.avail[k][1]
        ]
        if len(free) < 2:
            return
        if not self.queue:
            self.queue = [EPISODE_ROUND[i] for i in self.rng.permutation(len(EPISODE_ROUND))]
        kind = self.queue[0]
        a, b = (int(v) for v in self.rng.choice(free, 2, replace=False))
        pa, pb = self.pos[a], self.pos[b]
        hint = ((pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2) if _in_frame(pa) and _in_frame(pb) else (pa if _in_frame(pa) else pb)
        plan: _Staging = getattr(self, f"_plan_{kind}")(hint)
        starts, dur = plan.starts, plan.duration
        travel = max(_dist(self.pos[a], starts[0]), _dist(self.pos[b], starts[1])) / V_WALK
        t0 = t + travel + self.u(0.5, 2.0)
        t1 = t0 + dur
        for k, end in zip((a, b), plan.ends, strict=True):
            leave = 0.0 if self.exit_t[k] > self.seconds else min(end[0] - OFF_LEFT, OFF_RIGHT - end[0]) / V_WALK
            if t1 + leave + 1.0 > min(self.exit_t[k], self.seconds + 0.5):
                self.queue.append(self.queue.pop(0))  # does not fit now: try the next kind first
                return
        for j, k in enumerate((a, b)):
            self._fill(k, self.cursor[k], self.pos[k], t0, starts[j], plan.facings[j])
            self.cursor[k] = t1
            self.free_t[k] = t1 + self.u(0.5, 3.0)  # solo activity between episodes
            self.pos[k] = plan.ends[j]
        plan.build(a, b, t0)
        self.queue.pop(0)
        self.episodes.append(Episode(kind, t0, t1, (a, b), plan.detail))

    def _plan_conversation(self, hint: Point) -> _Staging:
        pa, pb, d = self._pair_spots(32.0, min(60.0, LISTEN_RANGE[1] - 4), hint)
        if self.chance(0.5):
            pa, pb = pb, pa
        fa, fb = (1 if pb[0] > pa[0] else -1), (1 if pa[0] > pb[0] else -1)
        dur = self.u(8.0, 14.0)
        poses = ["sit" if self.chance(0.3) else "stand" for _ in range(2)]
        greet = [self.chance(0.4), self.chance(0.4)]

        def build(a: int, b: int, t0: float) -> None:
            for k, p, f, pose, g in ((a, pa, fa, poses[0], greet[0]), (b, pb, fb, poses[1], greet[1])):
                self.facing[k] = f
                if g:
                    self._hold(k, t0, t0 + 1.5, pose, p, f, wave=True)
                    self._hold(k, t0 + 1.5, t0 + dur, pose, p, f)
                else:
                    self._hold(k, t0, t0 + dur, pose, p, f)
            speaker = a if self.chance(0.5) else b
            s = t0 + self.u(0.3, 1.5)
            while s < t0 + dur - 1.0:
                e = min(s + self.u(1.5, 4.0), t0 + dur - 0.3)
                self.actors[speaker].speech.append((s, e))
                s = e + self.u(0.2, 1.8)
                if self.chance(0.75):
                    speaker = b if speaker == a else a

        return _Staging((pa, pb), (pa, pb), (fa, fb), dur, build,
                        f"distance={d:.1f}")

    def _plan_idle_pair(self, hint: Point) -> _Staging:
        pa, pb, d = self._pair_spots(32.0, 64.0, hint)
        fa, fb = 1, -1
        if self.chance(0.3):
            fa, fb = -1, 1  # back to back
        dur = self.u(3.0, 6.0)

        def build(a: int, b: int, t0: float) -> None:
            self._hold(a, t0, t0 + dur, "stand", pa, fa)
            self._hold(b, t0, t0 + dur, "stand", pb, fb)
            self.facing[a], self.facing[b] = fa, fb

        return _Staging((pa, pb), (pa, pb), (fa, fb), dur, build,
                        f"distance={d:.1f} facing={'each other' if fa == 1 else 'away'}")

    def _plan_toss(self, hint: Point) -> _Staging:
        pa, pb, d = self._pair_spots(42.0, 64.0, hint)
        n = int(self.rng.integers(3, 7))
        flight, lead = 1.5, 0.6
        dur = lead + n * flight + 0.6

        def build(a: int, b: int, t0: float) -> None:
            self._hold(a, t0, t0 + dur, "stand", pa, 1)
            self._hold(b, t0, t0 + dur, "stand", pb, -1)
            self.facing[a], self.facing[b] = 1, -1
            thrower, catcher = (a, b) if self.chance(0.5) else (b, a)
            for i in range(n):
                s = t0 + lead + i * flight
                self.tosses.append(Toss(s, s + flight, thrower, catcher))
                thrower, catcher = catcher, thrower

        return _Staging((pa, pb), (pa, pb), (1, -1), dur, build,
                        f"distance={d:.1f} throws={n}")

    def _plan_follow(self, hint: Point) -> _Staging:
        gap = self.u(24.0, 52.0)
        direction = 1 if self.chance(0.5) else -1
        dur = min(self.u(4.0, 8.0), (SPOT_X[1] - SPOT_X[0] - gap) / V_WALK)
        path = V_WALK * dur
        y = float(np.clip(hint[1] + self.u(-12.0, 12.0), *FLOOR_Y))
        dy = float(np.clip(self.u(-3.0, 3.0), FLOOR_Y[0] - y, FLOOR_Y[1] - y))
        span_lo, span_hi = SPOT_X[0], SPOT_X[1] - gap - path
        back = self.u(span_lo, max(span_lo, span_hi))  # x of the rearmost point (follower start, rightward)
        if direction == 1:
            fa0, lb0 = back, back + gap
        else:
            fa0, lb0 = SPOT_X[1] - (back - SPOT_X[0]), SPOT_X[1] - (back - SPOT_X[0]) - gap
        follower0, leader0 = (fa0, y + dy), (lb0, y)
        follower1 = (fa0 + direction * path, y + dy)
        leader1 = (lb0 + direction * path, y)

        def build(a: int, b: int, t0: float) -> None:
            self.facing[a] = self.facing[b] = direction
            self._move(a, t0, follower0, follower1, V_WALK, "walk")
            self._move(b, t0, leader0, leader1, V_WALK, "walk")

        return _Staging((follower0, leader0), (follower1, leader1), (direction, direction), path / V_WALK, build,
                        f"gap={gap:.1f} direction={direction:+d}")

    def _plan_show(self, hint: Point) -> _Staging:
        jumper = (self._near(hint, 25.0, 24.0, 136.0), float(np.clip(hint[1] + self.u(-12.0, 12.0), *FLOOR_Y)))
        dx = self.u(30.0, 80.0)
        sides = [s for s in (1, -1) if SPOT_X[0] <= jumper[0] + s * dx <= SPOT_X[1]] or [1 if jumper[0] < 80 else -1]
        side = sides[int(self.rng.integers(len(sides)))]
        wy = float(np.clip(jumper[1] + self.u(-12.0, 12.0), *FLOOR_Y))
        watcher = (float(np.clip(jumper[0] + side * dx, *SPOT_X)), wy)
        fw = 1 if jumper[0] > watcher[0] else -1
        fj = -fw if self.chance(0.5) else fw
        dur = self.u(4.0, 7.0)
        pose = "sit" if self.chance(0.25) else "stand"

        def build(a: int, b: int, t0: float) -> None:
            self._hold(a, t0, t0 + dur, pose, watcher, fw)
            self._hold(b, t0, t0 + dur, "jump", jumper, fj)
            self.facing[a], self.facing[b] = fw, fj

        return _Staging((watcher, jumper), (watcher, jumper), (fw, fj), dur, build,
                        f"distance={abs(jumper[0] - watcher[0]):.1f}")

    # ---- whole video ----------------------------------------------------------------------
    def finish(self) -> None:
        for k, actor in enumerate(self.actors):
            if self.exit_t[k] > self.seconds:
                end = self.seconds + 1.0
                self._fill(k, self.cursor[k], self.pos[k], end, self.spot(), None)
            else:
                p = self.pos[k]
                edge = (OFF_LEFT if p[0] < 80 else OFF_RIGHT, p[1])
                leave = _dist(p, edge) / V_WALK
                t_exit = max(self.exit_t[k], self.cursor[k] + leave)
                self._fill(k, self.cursor[k], p, t_exit - leave, p, None)
                self._move(k, t_exit - leave, p, edge, V_WALK, "walk")
                self.episodes.append(Episode("exit", t_exit, t_exit, (k,), ""))
            enter_t = actor.segments[0].t0 if actor.segments else 0.0
            if enter_t > 0:
                self.episodes.append(Episode("enter", enter_t, enter_t, (k,), ""))

    def props(self) -> list[Prop]:
        out = []
        for _ in range(int(self.rng.integers(1, 4))):
            kind = str(self.rng.choice(["crate", "bench", "plant"]))
            w, h = {"crate": (self.u(14, 22), self.u(12, 20)), "bench": (self.u(24, 34), self.u(8, 11)),
                    "plant": (self.u(10, 14), self.u(16, 24))}[kind]
            colour = PROP_COLOURS[int(self.rng.integers(len(PROP_COLOURS)))]
            out.append(Prop(kind, self.u(20, 140), self.u(*FLOOR_Y), w, h, colour))  # type: ignore[arg-type]
        return out


def plan_world(config: SynthConfig, index: int) -> World:
    """Script video ``index`` of the dataset; depends only on (config, index)."""
    p = _Planner(config, index)
    alarm = None
    if config.has_alarm(index):
        a0 = p.u(1.0, 2.5)
        alarm = Alarm(a0, a0 + ALARM_SECONDS)
        p.episodes.append(Episode("alarm", alarm.t0, alarm.t1, (), "red full-frame flash"))
    p.cast()
    t = 0.5
    while t < p.seconds - 4.0:
        p._try_episode(t)
        t += p.u(0.3, 1.5)
    p.finish()
    props = p.props()
    background_seed = int(p.rng.integers(2**31))
    episodes = sorted(p.episodes, key=lambda e: (e.t0, e.kind, e.actors))
    return World(config.video_id(index), p.seconds, p.actors, p.tosses, p.keys, props, alarm, episodes,
                 background_seed)
