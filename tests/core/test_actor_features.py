"""Actor features equal a slow reference (Python loops, own bilinear RoIAlign) and context maps."""

from __future__ import annotations

import math

import pytest
import torch

from stad_core.models.actor_features import ActorFeatureExtractor, context_maps, roi_actor_features


def _bilinear(fmap: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """fmap [C, H, W]; RoIAlign's sampling rule (zero outside [-1, H], clamp at the border)."""
    _, h, w = fmap.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(fmap.shape[0], dtype=fmap.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * fmap[:, y0, x0] + (1 - ly) * lx * fmap[:, y0, x1]
            + ly * (1 - lx) * fmap[:, y1, x0] + ly * lx * fmap[:, y1, x1])


def _reference_roi_max(fmap: torch.Tensor, box_px: list[float], s: int, aligned: bool, ratio: int) -> torch.Tensor:
    """One box: RoIAlign to s x s at scale 1/16, then max over the cells -> [C]."""
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v / 16 - off for v in box_px)
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    bw, bh = rw / s, rh / s
    gh = ratio if ratio > 0 else math.ceil(rh / s)
    gw = ratio if ratio > 0 else math.ceil(rw / s)
    best = None
    for py in range(s):
        for px in range(s):
            acc = torch.zeros(fmap.shape[0], dtype=fmap.dtype)
            for iy in range(gh):
                for ix in range(gw):
                    yy = y1 + py * bh + (iy + 0.5) * bh / gh
                    xx = x1 + px * bw + (ix + 0.5) * bw / gw
                    acc += _bilinear(fmap, yy, xx)
            cell = acc / max(gh * gw, 1)
            best = cell if best is None else torch.maximum(best, cell)
    return best


def _reference(maps, boxes_per_clip, image_size, s, aligned, ratio):
    h, w = image_size
    rows = []
    for i, boxes in enumerate(boxes_per_clip):
        for box in boxes.tolist():
            px = [box[0] * w, box[1] * h, box[2] * w, box[3] * h]
            parts = []
            for fmap in maps:
                avg = fmap[i].mean(dim=1)  # [C, h, w]: average over time
                parts.append(_reference_roi_max(avg, px, s, aligned, ratio))
            rows.append(torch.cat(parts))
    return torch.stack(rows)


@pytest.mark.parametrize(("size", "aligned", "ratio"), [(7, False, 2), (8, True, 0), (7, True, 1)])
def test_matches_slow_reference(size: int, aligned: bool, ratio: int) -> None:
    g = torch.Generator().manual_seed(0)
    image_size = (80, 112)  # -> 5 x 7 maps
    maps = [torch.randn(3, 6, 2, 5, 7, generator=g, dtype=torch.float64),
            torch.randn(3, 2, 8, 5, 7, generator=g, dtype=torch.float64)]
    boxes = [
        torch.tensor([[0.1, 0.2, 0.5, 0.9], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64),
        torch.zeros((0, 4), dtype=torch.float64),  # a clip with no actors
        torch.tensor([[0.6, 0.05, 0.95, 0.4], [0.3, 0.3, 0.32, 0.33], [0.7, 0.7, 0.99, 0.99]], dtype=torch.float64),
    ]
    got = roi_actor_features(maps, boxes, image_size, output_size=size, aligned=aligned, sampling_ratio=ratio)
    want = _reference(maps, boxes, image_size, size, aligned, ratio)
    assert got.shape == (5, 8)
    torch.testing.assert_close(got, want)
    module = ActorFeatureExtractor(size, aligned, ratio)
    torch.testing.assert_close(module(maps, boxes, image_size), want)


def test_slowfast_r50_dimension() -> None:
    maps = [torch.rand(2, 2048, 8, 4, 6), torch.rand(2, 256, 32, 4, 6)]
    boxes = [torch.tensor([[0.1, 0.1, 0.5, 0.9]]), torch.tensor([[0.2, 0.1, 0.4, 0.5], [0.5, 0.5, 0.9, 0.9]])]
    feats = roi_actor_features(maps, boxes, (64, 96))
    assert feats.shape == (3, 2304)


def test_batch_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="box sets"):
        roi_actor_features([torch.rand(2, 4, 1, 4, 4)], [torch.rand(1, 4)], (64, 64))


def test_context_maps() -> None:
    maps = [torch.rand(2, 6, 2, 5, 7), torch.rand(2, 2, 8, 5, 7)]
    ctx = context_maps(maps)
    assert ctx.shape == (2, 8, 5, 7)
    torch.testing.assert_close(ctx[:, :6], maps[0].mean(dim=2))
    torch.testing.assert_close(ctx[:, 6:], maps[1].mean(dim=2))
    pooled = context_maps(maps, output_size=1)
    torch.testing.assert_close(pooled[..., 0, 0], ctx.mean(dim=(2, 3)))
    assert context_maps(maps, output_size=(4, 4)).shape == (2, 8, 4, 4)
