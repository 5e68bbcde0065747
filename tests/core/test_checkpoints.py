"""Checkpoint import: state dicts named and shaped exactly like the published PySlowFast
(SLOWFAST_8x8_R50: alpha 4, fusion kernel 7) and MMAction2 (slowfast_r50 8x8x1 AVA) files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stad_core.errors import InputFileError
from stad_core.models.backbones import build_backbone
from stad_core.models.checkpoints import (
    head_weights,
    load_backbone_checkpoint,
    mmaction2_key,
    pyslowfast_key,
    read_checkpoint,
)

R50_BLOCKS = (3, 4, 6, 3)
SLOW_TK = (1, 1, 3, 3)  # res2..res5
FAST_TK = (3, 3, 3, 3)
FAST_OUT = (8, 32, 64, 128)  # fast stem, res2, res3, res4 output channels (lateral inputs)


def _bn(shapes: dict[str, tuple[int, ...]], prefix: str, c: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{prefix}.{name}"] = (c,)
    shapes[f"{prefix}.num_batches_tracked"] = ()


def _pathway_blocks(width: int, tks: tuple[int, ...], extra: tuple[int, ...]):
    """Yield (stage 0..3, block, c_in, inner, out, temporal kernel) as the ResNet-50 spec defines."""
    c_in = width
    for s, n in enumerate(R50_BLOCKS):
        inner, out = width * 2**s, width * 2**s * 4
        for b in range(n):
            yield s, b, (c_in + extra[s]) if b == 0 else out, inner, out, tks[s]
        c_in = out


def pyslowfast_r50_shapes(fusion_kernel: int = 7) -> dict[str, tuple[int, ...]]:
    """Names/shapes of SLOWFAST_8x8_R50 ``model_state`` (+ the AVA head), written independently."""
    sh: dict[str, tuple[int, ...]] = {}
    sh["s1.pathway0_stem.conv.weight"] = (64, 3, 1, 7, 7)
    _bn(sh, "s1.pathway0_stem.bn", 64)
    sh["s1.pathway1_stem.conv.weight"] = (8, 3, 5, 7, 7)
    _bn(sh, "s1.pathway1_stem.bn", 8)
    for i, c in enumerate(FAST_OUT):
        sh[f"s{i + 1}_fuse.conv_f2s.weight"] = (2 * c, c, fusion_kernel, 1, 1)
        _bn(sh, f"s{i + 1}_fuse.bn", 2 * c)
    for p, width, tks, extra in ((0, 64, SLOW_TK, tuple(2 * c for c in FAST_OUT)), (1, 8, FAST_TK, (0,) * 4)):
        for s, b, c_in, inner, out, tk in _pathway_blocks(width, tks, extra):
            pre = f"s{s + 2}.pathway{p}_res{b}"
            if b == 0:
                sh[f"{pre}.branch1.weight"] = (out, c_in, 1, 1, 1)
                _bn(sh, f"{pre}.branch1_bn", out)
            sh[f"{pre}.branch2.a.weight"] = (inner, c_in, tk, 1, 1)
            _bn(sh, f"{pre}.branch2.a_bn", inner)
            sh[f"{pre}.branch2.b.weight"] = (inner, inner, 1, 3, 3)
            _bn(sh, f"{pre}.branch2.b_bn", inner)
            sh[f"{pre}.branch2.c.weight"] = (out, inner, 1, 1, 1)
            _bn(sh, f"{pre}.branch2.c_bn", out)
    sh["head.projection.weight"] = (80, 2304)
    sh["head.projection.bias"] = (80,)
    return sh


def mmaction2_r50_shapes(fast: bool = True) -> dict[str, tuple[int, ...]]:
    """Names/shapes of MMAction2's slowfast_r50 (or slowonly_r50) AVA ``state_dict``."""
    sh: dict[str, tuple[int, ...]] = {}
    paths = [("backbone.slow_path.", 64, SLOW_TK, tuple(2 * c for c in FAST_OUT)), ("backbone.fast_path.", 8, FAST_TK, (0,) * 4)]
    if not fast:
        paths = [("backbone.", 64, SLOW_TK, (0,) * 4)]
    for pre_path, width, tks, extra in paths:
        sh[f"{pre_path}conv1.conv.weight"] = (width, 3, 5 if "fast" in pre_path else 1, 7, 7)
        _bn(sh, f"{pre_path}conv1.bn", width)
        for s, b, c_in, inner, out, tk in _pathway_blocks(width, tks, extra):
            pre = f"{pre_path}layer{s + 1}.{b}"
            if b == 0:
                sh[f"{pre}.downsample.conv.weight"] = (out, c_in, 1, 1, 1)
                _bn(sh, f"{pre}.downsample.bn", out)
            sh[f"{pre}.conv1.conv.weight"] = (inner, c_in, tk, 1, 1)
            _bn(sh, f"{pre}.conv1.bn", inner)
            sh[f"{pre}.conv2.conv.weight"] = (inner, inner, 1, 3, 3)
            _bn(sh, f"{pre}.conv2.bn", inner)
            sh[f"{pre}.conv3.conv.weight"] = (out, inner, 1, 1, 1)
            _bn(sh, f"{pre}.conv3.bn", out)
    if fast:
        for i, c in enumerate(FAST_OUT):
            name = "conv1_lateral" if i == 0 else f"layer{i}_lateral"
            sh[f"backbone.slow_path.{name}.conv.weight"] = (2 * c, c, 7, 1, 1)
    sh["roi_head.bbox_head.fc_cls.weight"] = (81, 2304 if fast else 2048)
    sh["roi_head.bbox_head.fc_cls.bias"] = (81,)
    return sh


def _random_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: (torch.tensor(7) if not s else torch.randn(s, generator=g)) for k, s in shapes.items()}


def test_real_names_and_shapes_spot_checks() -> None:
    psf = pyslowfast_r50_shapes()
    # Facts about the published SLOWFAST_8x8_R50 checkpoint.
    assert psf["s1.pathway0_stem.conv.weight"] == (64, 3, 1, 7, 7)
    assert psf["s1_fuse.conv_f2s.weight"] == (16, 8, 7, 1, 1)
    assert psf["s2.pathway0_res0.branch1.weight"] == (256, 80, 1, 1, 1)
    assert psf["s2.pathway0_res0.branch2.a.weight"] == (64, 80, 1, 1, 1)
    assert psf["s5.pathway0_res0.branch2.a.weight"] == (512, 1280, 3, 1, 1)
    assert psf["s5.pathway1_res2.branch2.c.weight"] == (256, 64, 1, 1, 1)
    mma = mmaction2_r50_shapes()
    assert mma["backbone.slow_path.layer1.0.conv1.conv.weight"] == (64, 80, 1, 1, 1)
    assert mma["backbone.slow_path.conv1_lateral.conv.weight"] == (16, 8, 7, 1, 1)
    assert mma["backbone.slow_path.layer3_lateral.conv.weight"] == (256, 128, 7, 1, 1)


def test_pyslowfast_state_loads_with_zero_missing_keys() -> None:
    model = build_backbone("slowfast_r50", family="pyslowfast")
    state = _random_state(pyslowfast_r50_shapes())
    report = load_backbone_checkpoint(model, state)
    assert report.family == "pyslowfast"
    assert report.ok, report.summary()
    assert report.missing == [] and report.unexpected == [] and report.shape_mismatched == []
    assert report.head == ["head.projection.bias", "head.projection.weight"]
    own = model.state_dict()
    assert len(report.loaded) == len(own)  # every tensor, counters included
    torch.testing.assert_close(own["slow.res4.2.conv_b.weight"], state["s4.pathway0_res2.branch2.b.weight"])
    torch.testing.assert_close(own["laterals.3.bn.running_var"], state["s4_fuse.bn.running_var"])
    torch.testing.assert_close(own["fast.stem.conv.weight"], state["s1.pathway1_stem.conv.weight"])


def test_mmaction2_state_loads_with_zero_missing_keys() -> None:
    model = build_backbone("slowfast_r50", family="mmaction2")
    state = _random_state(mmaction2_r50_shapes())
    report = load_backbone_checkpoint(model, state)
    assert report.family == "mmaction2" and report.ok, report.summary()
    assert len(report.loaded) == len(model.state_dict())
    torch.testing.assert_close(model.state_dict()["laterals.0.conv.weight"],
                               state["backbone.slow_path.conv1_lateral.conv.weight"])
    w, b = head_weights(state, "mmaction2")
    assert w.shape == (80, 2304) and b.shape == (80,)  # background row dropped
    torch.testing.assert_close(w, state["roi_head.bbox_head.fc_cls.weight"][1:])


def test_mmaction2_slowonly_names() -> None:
    model = build_backbone("slowonly_r50", family="mmaction2")
    report = load_backbone_checkpoint(model, _random_state(mmaction2_r50_shapes(fast=False)))
    assert report.ok, report.summary()
    assert mmaction2_key("slow.res3.1.bn_b.weight", two_pathways=False) == "backbone.layer2.1.conv2.bn.weight"


def test_wrong_family_is_reported() -> None:
    # A PySlowFast checkpoint into an MMAction2-style model: the lateral BNs have nowhere to go.
    model = build_backbone("slowfast_r50", family="mmaction2")
    report = load_backbone_checkpoint(model, _random_state(pyslowfast_r50_shapes()))
    assert not report.ok
    assert "s1_fuse.bn.weight" in report.unexpected and report.missing == []
    # ... and the other way round, the BNs are missing.
    model = build_backbone("slowfast_r50", family="pyslowfast")
    report = load_backbone_checkpoint(model, _random_state(mmaction2_r50_shapes()))
    assert "laterals.0.bn.weight" in report.missing
    # A fusion-kernel-5 model (4x16 recipe) against a kernel-7 checkpoint: shape mismatches.
    model = build_backbone("slowfast_r50", family="pyslowfast", fusion_kernel=5)
    report = load_backbone_checkpoint(model, _random_state(pyslowfast_r50_shapes()))
    assert ("laterals.0.conv.weight", (16, 8, 7, 1, 1), (16, 8, 5, 1, 1)) in report.shape_mismatched
    assert "shape-mismatched" in report.summary()


def test_roundtrip_through_pyslowfast_names_preserves_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tiny = dict(width=8, blocks=(1, 1, 1, 1), alpha=2)
    a = build_backbone("slowfast_r50", **tiny).eval()
    exported = {"module." + pyslowfast_key(k): v for k, v in a.state_dict().items()}
    path = tmp_path / "ckpt.pyth"
    torch.save({"epoch": 3, "model_state": exported}, path)
    b = build_backbone("slowfast_r50", **tiny).eval()
    report = load_backbone_checkpoint(b, path)
    assert report.ok and report.family == "pyslowfast"
    x = torch.rand(1, 3, 4, 32, 32)
    with torch.no_grad():
        for ma, mb in zip(a(x).maps, b(x).maps, strict=True):
            torch.testing.assert_close(ma, mb)


def test_unreadable_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        read_checkpoint(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputFileError, match="cannot read"):
        read_checkpoint(tmp_path / "junk.pth")
    torch.save({"epoch": 1}, tmp_path / "nostate.pth")
    with pytest.raises(InputFileError, match="no state dict"):
        read_checkpoint(tmp_path / "nostate.pth")
