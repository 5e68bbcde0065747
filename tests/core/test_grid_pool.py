"""Grid Pool / Grid Unpool and the Coarse-Fine head: sampling, alignment, gradients."""

from __future__ import annotations

import torch

from stad_core.heads.coarse_fine import TEMPORAL_HEADS, MultiStageFusion, build_temporal_head
from stad_core.heads.grid_pool import GridPool, grid_positions, grid_unpool, interpolate_at


def test_uniform_confidences_are_uniform_sampling() -> None:
    x = torch.randn(2, 5, 24)
    odd = interpolate_at(x, grid_positions(torch.ones(2, 8), 24))  # stride 3: the middle frame of each region
    torch.testing.assert_close(odd, x[:, :, 1::3])
    even = interpolate_at(x, grid_positions(torch.full((2, 6), 0.3), 24))  # stride 4: between frames 1 and 2
    torch.testing.assert_close(even, (x[:, :, 1::4] + x[:, :, 2::4]) / 2)
    pool = GridPool(5, 8)
    for p in pool.predictor.parameters():  # a predictor that says the same everywhere
        torch.nn.init.zeros_(p)
    pooled, positions = pool(x)
    torch.testing.assert_close(pooled, x[:, :, 1::3])
    torch.testing.assert_close(positions, (torch.arange(8.0) * 3 + 1.5).expand(2, 8))


def test_confident_regions_get_denser_samples() -> None:
    confidence = torch.tensor([[1.0, 1.0, 6.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    p = grid_positions(confidence, 80)
    assert torch.all(p[:, 1:] > p[:, :-1])
    inside = ((p >= 20) & (p < 30)).sum().item()  # region 2 holds 6/13 of the mass: ~3.7 of 8 samples
    assert inside >= 3


def test_unpool_of_pool_restores_frame_alignment() -> None:
    torch.manual_seed(0)
    length = 40
    ramp = torch.arange(length, dtype=torch.float32).view(1, 1, -1).repeat(3, 2, 1)
    confidence = torch.rand(3, 10) * 5 + 0.1  # any grid
    positions = grid_positions(confidence, length)
    back = grid_unpool(interpolate_at(ramp, positions), positions, length)
    # A linear signal is interpolated exactly: every frame between the first and last sample gets
    # its own value back, i.e. the per-sample outputs land on the frames they were read from.
    for b in range(3):
        frames = torch.arange(length) + 0.5
        inner = (frames >= positions[b, 0]) & (frames <= positions[b, -1])
        assert inner.sum() > length // 2
        torch.testing.assert_close(back[b, :, inner], ramp[b, :, inner])
    # A spike inside a confident region comes back at its own frame.
    spike = torch.zeros(1, 1, length)
    spike[0, 0, 17] = 1.0
    dense = torch.ones(1, 10)
    dense[0, 4] = 20.0  # region 16..19 sampled densely
    p = grid_positions(dense, length)
    assert grid_unpool(interpolate_at(spike, p), p, length).argmax().item() == 17


def test_gradients_reach_the_confidence_predictor() -> None:
    torch.manual_seed(0)
    pool = GridPool(4, 6)
    x = torch.randn(2, 4, 30)
    pooled, positions = pool(x)
    (pooled * torch.randn_like(pooled)).sum().backward()
    grads = [p.grad for p in pool.predictor.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0
    # Through the whole Coarse-Fine head too (unpool and the Gaussian alignment both use the positions).
    net = build_temporal_head("coarse_fine", 4, [3, 5], 2, samples=6, channels=8)
    out = net(x, [torch.randn(2, 3, 30), torch.randn(2, 5, 30)])
    assert out.shape == (2, 2, 30)
    out.sum().backward()
    assert net.grid_pool is not None
    assert sum(p.grad.abs().sum().item() for p in net.grid_pool.predictor.parameters()) > 0


def test_gaussian_alignment_is_centred_on_the_coarse_positions() -> None:
    fusion = MultiStageFusion([1], 4, sigma=0.25, location=0.0)
    w = fusion.gaussians(torch.tensor([[5.5, 20.5]]), 32)  # spacing 16, sigma 4 steps
    assert w.argmax(-1).tolist() == [[5, 20]]
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 2))
    shifted = MultiStageFusion([1], 4, sigma=0.25, location=0.5).gaussians(torch.tensor([[5.5, 20.5]]), 32)
    assert shifted.argmax(-1).tolist() == [[13, 28]]  # + half a coarse spacing


def test_every_head_maps_steps_to_steps() -> None:
    for name in TEMPORAL_HEADS:
        net = build_temporal_head(name, 6, [3, 5], 4, samples=8, channels=8)
        out = net(torch.randn(2, 6, 50), [torch.randn(2, 3, 50), torch.randn(2, 5, 50)])
        assert out.shape == (2, 4, 50), name
