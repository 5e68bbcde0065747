"""Backbone interface: stride-16 maps with documented per-pathway shapes, for every backbone."""

from __future__ import annotations

import pytest
import torch

from stad_core.errors import ConfigError
from stad_core.models.backbones import BACKBONES, build_backbone
from stad_core.models.base import frames_to_clip
from stad_core.models.resnet3d import SlowFastResNet

TINY = dict(width=8, blocks=(1, 1, 1, 1))
SIZES = [(64, 64), (48, 80)]


def _h16(n: int) -> int:
    return -(-n // 16)


@pytest.mark.parametrize("family", ["pyslowfast", "mmaction2"])
@pytest.mark.parametrize("depth", ["r50", "r101"])
@pytest.mark.parametrize("size", SIZES)
def test_slowfast_shapes(family: str, depth: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = build_backbone(f"slowfast_{depth}", family=family, **TINY).eval()
    h, w = size
    with torch.no_grad():
        out = model(torch.rand(2, 3, 8, h, w))
    slow, fast = out.maps
    # width 8 -> slow res5 8*8*4 = 256 channels; fast width 8/8 = 1 -> 32 channels
    assert slow.shape == (2, 256, 2, _h16(h), _h16(w))
    assert fast.shape == (2, 32, 8, _h16(h), _h16(w))
    assert model.pathway_channels == (256, 32) and out.channels == 288


@pytest.mark.parametrize("size", SIZES)
def test_slowonly_shapes(size: tuple[int, int]) -> None:
    model = build_backbone("slowonly_r50", **TINY).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 4, *size))
    assert len(out.maps) == 1
    assert out.maps[0].shape == (1, 256, 4, _h16(size[0]), _h16(size[1]))


def test_full_size_slowfast_r50_channels_and_shapes() -> None:
    model = build_backbone("slowfast_r50").eval()
    assert model.pathway_channels == (2048, 256) and model.out_channels == 2304
    n_params = sum(p.numel() for p in model.parameters())
    assert 33.0e6 < n_params < 34.5e6  # SlowFast R50 backbone is ~33.6M parameters
    with torch.no_grad():
        slow, fast = model(torch.rand(1, 3, 4, 32, 48)).maps
    assert slow.shape == (1, 2048, 1, 2, 3) and fast.shape == (1, 256, 4, 2, 3)
    assert build_backbone("slowonly_r101").pathway_channels == (2048,)


def test_family_conventions() -> None:
    psf = build_backbone("slowfast_r50", family="pyslowfast", **TINY)
    mma = build_backbone("slowfast_r50", family="mmaction2", **TINY)
    assert isinstance(psf, SlowFastResNet) and isinstance(mma, SlowFastResNet)
    assert psf.slow.res5[0].conv_b.dilation == (1, 2, 2) and mma.slow.res5[0].conv_b.dilation == (1, 1, 1)
    assert psf.laterals[0].bn is not None and mma.laterals[0].bn is None
    assert psf.slow_indices(32).tolist() == [0, 4, 8, 13, 17, 22, 26, 31]  # linspace(0, 31, 8)
    assert mma.slow_indices(32).tolist() == [0, 4, 8, 12, 16, 20, 24, 28]
    assert psf.normalization.mean == (0.45, 0.45, 0.45)
    assert mma.normalization.mean == pytest.approx((123.675 / 255, 116.28 / 255, 103.53 / 255), abs=1e-6)
    assert mma.normalization.std == pytest.approx((58.395 / 255, 57.12 / 255, 57.375 / 255), abs=1e-6)


def test_uint8_and_float_inputs_agree() -> None:
    model = build_backbone("slowonly_r50", **TINY).eval()
    frames = torch.randint(0, 256, (1, 4, 32, 32, 3), dtype=torch.uint8)
    clip = frames_to_clip(frames)
    assert clip.shape == (1, 3, 4, 32, 32)
    with torch.no_grad():
        a = model(clip).maps[0]
        b = model(clip.float() / 255).maps[0]
    torch.testing.assert_close(a, b)


def test_tiny_slowfast_trains() -> None:
    torch.manual_seed(0)
    model = build_backbone("slowfast_r50", alpha=2, family="mmaction2", **TINY)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.rand(2, 3, 4, 32, 32)
    losses = []
    for _ in range(3):
        loss = sum(m.pow(2).mean() for m in model(x).maps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18", "mvit_v2_s", "swin3d_t", "s3d"])
def test_torchvision_video_shapes(name: str) -> None:
    # The transformers are built reduced (width 16, one block per stage) to keep CPU time low.
    knobs = {"width": 16} if name in ("mvit_v2_s", "swin3d_t") else {}
    model = build_backbone(name, **knobs).eval()
    channels = model.pathway_channels[0]
    t = 8 if name == "s3d" else 4
    for h, w in [(32, 32), (64, 32)]:
        with torch.no_grad():
            (fmap,) = model(torch.rand(1, 3, t, h, w)).maps
        assert fmap.shape[:2] == (1, channels)
        assert fmap.shape[3:] == (_h16(h), _h16(w)), name
        assert fmap.shape[2] >= 1


def test_registry_and_errors() -> None:
    assert {"slowfast_r50", "slowonly_r50", "mvit_v2_s", "swin3d_t", "s3d", "r2plus1d_18"} <= set(BACKBONES)
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_backbone("resnet9000")
    with pytest.raises(ConfigError, match="slowfast_r50"):
        build_backbone("slowfast_r50", no_such_knob=1)
    with pytest.raises(ValueError, match="divisible by alpha"):
        build_backbone("slowfast_r50", **TINY)(torch.rand(1, 3, 6, 32, 32))
