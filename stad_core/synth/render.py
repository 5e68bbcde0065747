"""Vectorised numpy rendering of a synthetic world: textured backgrounds, stick-figure actors,
props, keys, the ball and the alarm flash.

Each shape is rasterised on its own bounding-box patch (no per-pixel Python). At keyframes the
renderer also tracks which actor owns each pixel, which gives pixel-exact boxes and the occlusion
measure used by the exclusion rule.
"""

from __future__ import annotations

import colorsys
import functools
import math
from dataclasses import dataclass

import numpy as np

from stad_core.synth.world import FLOOR_Y, HORIZON, REF_H, REF_W, RGB, ActorState, Identity, Prop, World

BALL: RGB = (255, 140, 0)
KEY: RGB = (255, 0, 255)
WHITE: RGB = (255, 255, 255)
EYE: RGB = (20, 20, 20)
ALARM: RGB = (255, 30, 30)
BALL_ARC = 14.0  # peak height of a throw above the straight line, reference units


@dataclass(frozen=True)
class ActorView:
    """What the frame shows of one actor.

    ``box``: pixel-exact [x1, y1, x2, y2] of its drawn pixels inside the frame (normalised to [0, 1]),
    None when nothing is in the frame. ``in_frame``: share of its unclipped extent inside the frame.
    ``unoccluded``: share of its in-frame pixels not covered by nearer actors, props or the ball.
    """

    actor_id: int
    box: tuple[float, float, float, float] | None
    in_frame: float
    unoccluded: float


# ---- rasterisation --------------------------------------------------------------------------------


Region = tuple[slice, slice]
Hit = tuple[Region, np.ndarray] | None  # (rows, cols) of a patch and its bool mask, or None if off-frame


def _patch(x_lo: float, x_hi: float, y_lo: float, y_hi: float, h: int, w: int) -> tuple[Region, np.ndarray, np.ndarray] | None:
    """The frame patch covering [x_lo, x_hi) x [y_lo, y_hi) with its pixel-centre coordinates [1, pw], [ph, 1]."""
    c0, c1 = max(int(math.floor(x_lo)), 0), min(int(math.ceil(x_hi)), w)
    r0, r1 = max(int(math.floor(y_lo)), 0), min(int(math.ceil(y_hi)), h)
    if c0 >= c1 or r0 >= r1:
        return None
    xs = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5  # pixel centres
    ys = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
    return (slice(r0, r1), slice(c0, c1)), xs, ys


def segment_mask(x0: float, y0: float, x1: float, y1: float, r: float, h: int, w: int) -> Hit:
    """Pixels within ``r`` of the segment (pixel coordinates): (region slices, bool mask) or None."""
    p = _patch(min(x0, x1) - r, max(x0, x1) + r, min(y0, y1) - r, max(y0, y1) + r, h, w)
    if p is None:
        return None
    region, xs, ys = p
    dx, dy = x1 - x0, y1 - y0
    l2 = dx * dx + dy * dy
    if l2 < 1e-9:
        d2 = (xs - x0) ** 2 + (ys - y0) ** 2
    else:
        u = np.clip(((xs - x0) * dx + (ys - y0) * dy) / l2, 0.0, 1.0)
        d2 = (xs - x0 - u * dx) ** 2 + (ys - y0 - u * dy) ** 2
    return region, d2 <= r * r


def rect_mask(x0: float, y0: float, x1: float, y1: float, h: int, w: int) -> Hit:
    p = _patch(x0, x1, y0, y1, h, w)
    if p is None:
        return None
    region, xs, ys = p
    return region, (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)


def diamond_mask(cx: float, cy: float, r: float, h: int, w: int) -> Hit:
    p = _patch(cx - r, cx + r, cy - r, cy + r, h, w)
    if p is None:
        return None
    region, xs, ys = p
    return region, (np.abs(xs - cx) + np.abs(ys - cy)) <= r


@dataclass(frozen=True)
class Shape:
    """A drawable primitive in pixel coordinates; ``body`` shapes count for boxes and occlusion."""

    kind: str  # "seg" (x0, y0, x1, y1, r) | "rect" (x0, y0, x1, y1) | "diamond" (cx, cy, r)
    params: tuple[float, ...]
    colour: RGB
    body: bool = True

    def mask(self, h: int, w: int) -> Hit:
        if self.kind == "seg":
            return segment_mask(*self.params, h, w)
        if self.kind == "rect":
            return rect_mask(*self.params, h, w)
        return diamond_mask(*self.params, h, w)

    def extent(self) -> tuple[float, float, float, float]:
        if self.kind == "seg":
            x0, y0, x1, y1, r = self.params
            return min(x0, x1) - r, min(y0, y1) - r, max(x0, x1) + r, max(y0, y1) + r
        if self.kind == "rect":
            return self.params  # type: ignore[return-value]
        cx, cy, r = self.params
        return cx - r, cy - r, cx + r, cy + r


# ---- actors -----------------------------------------------------------------------------------------


def depth_scale(y: float) -> float:
    """Sprite size factor: nearer (larger y) actors are drawn bigger (0.8 at the back, 1.25 at the front)."""
    return 0.8 + 0.45 * (y - FLOOR_Y[0]) / (FLOOR_Y[1] - FLOOR_Y[0])


def _shade(c: RGB, f: float) -> RGB:
    return tuple(int(min(255, max(0, round(v * f)))) for v in c)  # type: ignore[return-value]


def actor_shapes(s: ActorState, identity: Identity, t: float, sx: float, sy: float) -> list[Shape]:
    """The stick figure of one actor state, back-to-front, in pixel coordinates.

    Body-local layout (reference units at scale 1, y up is negative): feet at 0, hips at -15,
    neck at -28, head centre at -33.5 (radius 4.5); limbs are two segments each.
    """
    k = depth_scale(s.y) * sy
    f = s.facing
    ox, oy = s.x * sx, s.y * sy
    lift = 0.0
    lean = 0.0
    a = 2.0 * math.pi * s.age
    if s.pose == "sit":
        hip, neck = (0.0, -4.0), (0.0, -17.0)
        legs = [((f * 7.0, -7.0), (f * 12.0, -1.0))] * 2
        arms = [((f * 3.0, -11.0), (f * 6.5, -8.0)), ((f * 2.0, -11.5), (f * 5.5, -8.5))]
    else:
        hip, neck = (0.0, -15.0), (0.0, -28.0)
        if s.pose == "walk":
            sw = 5.0 * math.sin(a * 1.6)
            legs = [((sw * 0.5, -7.5), (sw, 0.0)), ((-sw * 0.5, -7.5), (-sw, 0.0))]
            arms = [((-sw * 0.4, -20.0), (-sw * 0.7, -14.0)), ((sw * 0.4, -20.0), (sw * 0.7, -14.0))]
        elif s.pose == "run":
            ph = a * 2.8
            sw = 8.0 * math.sin(ph)
            up = [3.0 * max(0.0, math.cos(ph)), 3.0 * max(0.0, -math.cos(ph))]
            legs = [((sw * 0.6 + f * 1.5, -8.0 - up[0]), (sw, -up[0])), ((-sw * 0.6 + f * 1.5, -8.0 - up[1]), (-sw, -up[1]))]
            arms = [((-sw * 0.5, -22.0), (-sw * 0.5 + f * 3.0, -18.0)), ((sw * 0.5, -22.0), (sw * 0.5 + f * 3.0, -18.0))]
            lean = 3.0 * f
        elif s.pose == "jump":
            lift = 7.0 * abs(math.sin(a))  # two hops per second
            legs = [((3.0, -7.0), (2.0, 0.0)), ((-3.0, -7.0), (-2.0, 0.0))]
            arms = [((4.0, -31.0), (7.0, -37.0)), ((-4.0, -31.0), (-7.0, -37.0))]
        else:  # stand
            legs = [((1.5, -7.5), (2.5, 0.0)), ((-1.5, -7.5), (-2.5, 0.0))]
            arms = [((2.5, -20.0), (3.0, -14.0)), ((-2.5, -20.0), (-3.0, -14.0))]
    if s.reach:
        lean = 3.0 * f
        arms = [((f * 5.0, -17.0), (f * 8.0, -6.0)), arms[1]]
    if s.wave:  # the hand well above the cap (the rule's "above the head"), swinging sideways
        swing = 4.0 * math.sin(a * 2.5)
        sh_y = neck[1] + 2.0
        arms = [((f * 4.5, sh_y - 8.0), (f * 4.5 + swing, sh_y - 19.0)), arms[1]]

    def P(p: tuple[float, float], dx: float = 0.0) -> tuple[float, float]:
        return ox + (p[0] + dx) * k, oy + (p[1] - lift) * k

    hipp = P(hip)
    neckp = P(neck, lean)
    shoulder = P((neck[0], neck[1] + 2.0), lean)
    head = P((neck[0], neck[1] - 5.5), lean)
    hr = 4.5 * k
    limb = max(1.3 * k, 0.75)
    shirt, pants = identity.shirt, identity.pants
    sleeve = _shade(shirt, 0.75)

    Pt = tuple[float, float]

    def limb_shapes(joint: Pt, end: Pt, origin: Pt, colour: RGB) -> list[Shape]:
        j, e = P(joint), P(end)
        return [Shape("seg", (*origin, *j, limb), colour), Shape("seg", (*j, *e, limb), colour)]

    out: list[Shape] = []
    out += limb_shapes(*arms[1], shoulder, _shade(sleeve, 0.8))  # far arm first
    out += limb_shapes(*legs[1], hipp, _shade(pants, 0.85))
    out += limb_shapes(*legs[0], hipp, pants)
    out.append(Shape("seg", (*hipp, *neckp, max(2.8 * k, 1.2)), shirt))
    out += limb_shapes(*arms[0], shoulder, sleeve)
    hx, hy = head
    out.append(Shape("seg", (hx, hy, hx, hy, hr), identity.skin))
    out.append(Shape("seg", (hx - 0.45 * hr, hy - 0.6 * hr, hx + 0.45 * hr, hy - 0.6 * hr, 0.55 * hr), identity.cap))
    out.append(Shape("seg", (hx, hy - 0.55 * hr, hx + f * (hr + 3.0 * k), hy - 0.45 * hr, max(0.8 * k, 0.7)),
                     identity.cap))  # cap bill: shows the facing direction
    out.append(Shape("seg", (hx + f * 0.5 * hr, hy + 0.1 * hr, hx + f * 0.5 * hr, hy + 0.1 * hr, max(0.8 * k, 0.7)),
                     EYE))
    if s.speaking:  # a steady speech bubble outside the box (a 2.5 Hz blink aliased away in Slow frames 0.4 s apart)
        bx, by = hx + f * (hr + 5.5 * k), hy - 1.2 * hr
        out.append(Shape("seg", (bx - 1.8 * k, by, bx + 1.8 * k, by, 2.2 * k), WHITE, body=False))
        out.append(Shape("seg", (bx - f * 2.5 * k, by + 2.6 * k, bx - f * 2.5 * k, by + 2.6 * k, 0.9 * k), WHITE,
                         body=False))
    return out


def prop_shapes(p: Prop, sx: float, sy: float) -> list[Shape]:
    x, y, w, h = p.x * sx, p.y * sy, p.w * sx, p.h * sy
    dark = _shade(p.colour, 0.6)
    if p.kind == "crate":
        return [Shape("rect", (x - w / 2, y - h, x + w / 2, y), dark, body=False),
                Shape("rect", (x - w / 2 + 1, y - h + 1, x + w / 2 - 1, y - 1), p.colour, body=False),
                Shape("seg", (x - w / 2 + 1, y - h + 1, x + w / 2 - 1, y - 1, 0.6), dark, body=False)]
    if p.kind == "bench":
        return [Shape("rect", (x - w / 2 + 2, y - h, x - w / 2 + 4, y), dark, body=False),
                Shape("rect", (x + w / 2 - 4, y - h, x + w / 2 - 2, y), dark, body=False),
                Shape("rect", (x - w / 2, y - h, x + w / 2, y - h + 3 * sy), p.colour, body=False)]
    pot_h = 0.4 * h
    r = w / 2
    return [Shape("rect", (x - 0.3 * w, y - pot_h, x + 0.3 * w, y), (150, 80, 40), body=False),
            Shape("seg", (x, y - pot_h - 0.8 * r, x, y - h + r, r), (40, 130, 50), body=False)]


# ---- background -------------------------------------------------------------------------------------


def _hsv(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*s), rng.uniform(*v))
    return np.array([r, g, b], dtype=np.float32) * 255.0


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Bilinearly upsampled uniform noise in [-1, 1], shape [h, w]."""
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.uniform(-1, 1, size=(gh, gw)).astype(np.float32)
    ys = np.arange(h, dtype=np.float32) / cell
    xs = np.arange(w, dtype=np.float32) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
    g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fy) * (1 - fx) + g01 * (1 - fy) * fx + g10 * fy * (1 - fx) + g11 * fy * fx)


def _texture(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """Brightness modulation in roughly [-1, 1], shape [h, w]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "bricks":
        bh, bw = rng.integers(5, 9), rng.integers(10, 18)
        row = (yy // bh).astype(int)
        shift = (row % 2) * (bw // 2)
        mortar = ((yy % bh) < 1) | (((xx + shift) % bw) < 1)
        return np.where(mortar, -1.0, 0.25 * _smooth_noise(rng, h, w, 6)).astype(np.float32)
    if kind == "stripes":
        period = rng.integers(6, 16)
        vertical = rng.random() < 0.5
        coord = xx if vertical else yy
        return np.where((coord // (period / 2)) % 2 == 0, 0.5, -0.5).astype(np.float32)
    if kind == "tiles":
        size = rng.integers(8, 16)
        return np.where(((xx // size) + (yy // size)) % 2 == 0, 0.5, -0.5).astype(np.float32)
    if kind == "planks":
        size = rng.integers(4, 8)
        return np.where((yy % size) < 1, -1.0, 0.3 * _smooth_noise(rng, h, w, 10)).astype(np.float32)
    return _smooth_noise(rng, h, w, int(rng.integers(4, 16)))  # "noise"


def render_background(seed: int, width: int, height: int) -> np.ndarray:
    """A per-video textured wall and floor with a few wall decorations, uint8 [height, width, 3]."""
    rng = np.random.default_rng(seed)
    horizon = int(round(HORIZON * height / REF_H))
    img = np.empty((height, width, 3), dtype=np.float32)
    for rows, kinds, v in ((slice(0, horizon), ("bricks", "stripes", "noise"), (0.45, 0.8)),
                           (slice(horizon, height), ("tiles", "planks", "noise"), (0.3, 0.65))):
        h = rows.stop - rows.start
        base = _hsv(rng, (0.05, 0.35), v)
        tex = _texture(rng, h, width, str(rng.choice(kinds)))
        contrast = rng.uniform(12, 30)
        img[rows] = base[None, None, :] + contrast * tex[:, :, None]
    img[horizon - 1 : horizon + 1] *= 0.7  # skirting line
    for _ in range(int(rng.integers(0, 3))):  # windows / posters
        w, h = rng.uniform(12, 30) * width / REF_W, rng.uniform(10, 20) * height / REF_H
        x, y = rng.uniform(0, width - w), rng.uniform(2, max(3.0, horizon - h - 4))
        hit = rect_mask(x, y, x + w, y + h, height, width)
        if hit is not None:
            region, m = hit
            img[region][m] = _hsv(rng, (0.1, 0.5), (0.4, 0.9))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---- frames -----------------------------------------------------------------------------------------


def ball_position(world: World, t: float, states: dict[int, ActorState]) -> tuple[float, float] | None:
    """Reference-unit position of the ball in flight at ``t`` (chest to chest, on an arc), or None."""
    for toss in world.tosses:
        if toss.t0 <= t < toss.t1 and toss.thrower in states and toss.catcher in states:
            a, b = states[toss.thrower], states[toss.catcher]
            u = (t - toss.t0) / (toss.t1 - toss.t0)
            ya = a.y - 22.0 * depth_scale(a.y)
            yb = b.y - 22.0 * depth_scale(b.y)
            return (a.x + (b.x - a.x) * u, ya + (yb - ya) * u - BALL_ARC * 4.0 * u * (1.0 - u))
    return None


@functools.lru_cache(maxsize=256)
def _static_mask(shape: Shape, h: int, w: int) -> Hit:
    """Masks of shapes that never move (props, keys) are computed once per video."""
    return shape.mask(h, w)


def _paint_static(img: np.ndarray, shape: Shape, owner: np.ndarray | None, own: np.ndarray | None, actor_id: int) -> None:
    hit = _static_mask(shape, img.shape[0], img.shape[1])
    if hit is None:
        return
    region, m = hit
    img[region][m] = shape.colour
    if owner is not None:
        owner[region][m] = actor_id if shape.body else -2
        if own is not None and shape.body:
            own[region] |= m


def _paint_segments(
    img: np.ndarray, shapes: list[Shape], owner: np.ndarray | None, own: np.ndarray | None, actor_id: int
) -> None:
    """Draw many ``seg`` shapes in one vectorised pass (later shapes on top): distances [S, P] over one patch."""
    h, w = img.shape[:2]
    ext = [sh.extent() for sh in shapes]
    hit = _patch(min(e[0] for e in ext), max(e[2] for e in ext), min(e[1] for e in ext), max(e[3] for e in ext), h, w)
    if hit is None:
        return
    region, xs, ys = hit
    prm = np.array([sh.params for sh in shapes], dtype=np.float32)  # [S, 5]: x0, y0, x1, y1, r
    x0, y0, x1, y1, r = (prm[:, i, None, None] for i in range(5))
    dx, dy = x1 - x0, y1 - y0
    l2 = np.maximum(dx * dx + dy * dy, 1e-9)
    u = np.minimum(np.maximum(((xs - x0) * dx + (ys - y0) * dy) / l2, 0.0), 1.0)
    inside = (xs - x0 - u * dx) ** 2 + (ys - y0 - u * dy) ** 2 <= r * r  # [S, ph, pw]
    n = len(shapes)
    top = n - 1 - np.argmax(inside[::-1], axis=0)  # index of the last (topmost) shape covering a pixel
    covered = inside.any(axis=0)
    colours = np.array([sh.colour for sh in shapes], dtype=np.uint8)
    patch = img[region]
    patch[covered] = colours[top[covered]]
    if owner is not None:
        body = np.array([sh.body for sh in shapes])
        ids = np.where(body, actor_id, -2).astype(np.int16)
        owner[region][covered] = ids[top[covered]]
        if own is not None:
            own[region] |= inside[body].any(axis=0)


def render_frame(
    world: World, background: np.ndarray, t: float, *, track: bool = False
) -> tuple[np.ndarray, list[ActorView]]:
    """Draw the world at time ``t``: uint8 [H, W, 3]; with ``track`` also one ``ActorView`` per actor present."""
    h, w = background.shape[:2]
    sx, sy = w / REF_W, h / REF_H
    img = background.copy()
    owner = np.full((h, w), -1, dtype=np.int16) if track else None
    states = {s.actor_id: s for s in world.states(t)}
    identities = {a.actor_id: a.identity for a in world.actors}

    for key in world.keys:  # flat on the floor: below everything else
        if t < key.pickup:
            k = depth_scale(key.y) * sy
            _paint_static(img, Shape("diamond", (key.x * sx, key.y * sy, 3.4 * k), WHITE, body=False), owner, None, -2)
            _paint_static(img, Shape("diamond", (key.x * sx, key.y * sy, 2.3 * k), KEY, body=False), owner, None, -2)

    # Painter's algorithm over actors and props by floor depth (feet/base y), ties by kind then id.
    items: list[tuple[float, int, int]] = [(s.y, 1, s.actor_id) for s in states.values()]
    items += [(p.y, 0, i) for i, p in enumerate(world.props)]
    shapes_of: dict[int, list[Shape]] = {}
    own_masks: dict[int, np.ndarray] = {}
    for _, is_actor, ident in sorted(items):
        if is_actor:
            shapes = actor_shapes(states[ident], identities[ident], t, sx, sy)
            shapes_of[ident] = shapes
            own = np.zeros((h, w), dtype=bool) if track else None
            if own is not None:
                own_masks[ident] = own
            _paint_segments(img, shapes, owner, own, ident)
        else:
            for shape in prop_shapes(world.props[ident], sx, sy):
                _paint_static(img, shape, owner, None, -2)

    ball = ball_position(world, t, states)
    if ball is not None:
        _paint_segments(img, [Shape("seg", (ball[0] * sx, ball[1] * sy, ball[0] * sx, ball[1] * sy, 2.6 * sy), BALL,
                                    body=False)], owner, None, -2)

    alarm = world.alarm
    if alarm is not None and alarm.t0 <= t < alarm.t1:  # steady: a blink aliases away in strided clips
        img = np.round(img.astype(np.float32) * 0.45 + np.array(ALARM, np.float32) * 0.55).astype(np.uint8)

    views: list[ActorView] = []
    if track:
        assert owner is not None
        for ident, shapes in shapes_of.items():
            ext = [sh.extent() for sh in shapes if sh.body]
            x0, y0 = min(e[0] for e in ext), min(e[1] for e in ext)
            x1, y1 = max(e[2] for e in ext), max(e[3] for e in ext)
            inside = max(0.0, min(x1, w) - max(x0, 0.0)) * max(0.0, min(y1, h) - max(y0, 0.0))
            in_frame = inside / max((x1 - x0) * (y1 - y0), 1e-9)
            own = own_masks[ident]
            n_own = int(own.sum())
            if n_own == 0:
                views.append(ActorView(ident, None, in_frame, 0.0))
                continue
            rows = np.flatnonzero(own.any(axis=1))
            cols = np.flatnonzero(own.any(axis=0))
            box = (cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h)
            unoccluded = int((owner == ident).sum()) / n_own
            views.append(ActorView(ident, box, in_frame, unoccluded))
        views.sort(key=lambda v: v.actor_id)
    return img, views
