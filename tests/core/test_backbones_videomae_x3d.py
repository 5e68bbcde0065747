"""VideoMAE ViT and X3D: stride-16 maps, and checkpoint import from state dicts named and shaped exactly
like the published files (MMAction2's VideoMAE AVA models and the original VideoMAE release; PySlowFast's
and MMAction2's X3D-S/M/L), built in memory with random values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from stad_core.errors import StadError
from stad_core.models import build_backbone
from stad_core.models.checkpoints import CheckpointMismatchError, load_backbone_checkpoint, mmaction2_key
from stad_core.models.videomae import sinusoid_table

# --- published layouts, written out from the releases' architecture (not from our mapping) ----------


def _rand(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g) * 0.02)
            for k, s in shapes.items()}


def videomae_mmaction2_shapes(width: int, depth: int, frames: int = 16, size: int = 224,
                              classes: int = 81) -> dict[str, tuple[int, ...]]:
    """MMAction2 ``vit-base-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb`` (and ViT-L)."""
    n = (frames // 2) * (size // 16) ** 2
    s: dict[str, tuple[int, ...]] = {
        "backbone.pos_embed": (1, n, width),
        "backbone.patch_embed.projection.weight": (width, 3, 2, 16, 16),
        "backbone.patch_embed.projection.bias": (width,),
    }
    for i in range(depth):
        p = f"backbone.blocks.{i}."
        s.update({p + "norm1.weight": (width,), p + "norm1.bias": (width,), p + "attn.q_bias": (width,),
                  p + "attn.v_bias": (width,), p + "attn.qkv.weight": (3 * width, width),
                  p + "attn.proj.weight": (width, width), p + "attn.proj.bias": (width,),
                  p + "norm2.weight": (width,), p + "norm2.bias": (width,),
                  p + "mlp.layers.0.0.weight": (4 * width, width), p + "mlp.layers.0.0.bias": (4 * width,),
                  p + "mlp.layers.1.weight": (width, 4 * width), p + "mlp.layers.1.bias": (width,)})
    s.update({"backbone.norm.weight": (width,), "backbone.norm.bias": (width,),
              "roi_head.bbox_head.fc_cls.weight": (classes, width), "roi_head.bbox_head.fc_cls.bias": (classes,)})
    return s


def videomae_original_shapes(width: int, depth: int, prefix: str = "", final: str = "norm",
                             classes: int = 400) -> dict[str, tuple[int, ...]]:
    """The VideoMAE release: fine-tuned (``final='fc_norm'``, mean pooling, ``head``) or pre-trained
    encoder (``prefix='encoder.'``, ``final='norm'``); the fixed position table is not stored."""
    s: dict[str, tuple[int, ...]] = {prefix + "patch_embed.proj.weight": (width, 3, 2, 16, 16),
                                     prefix + "patch_embed.proj.bias": (width,)}
    for i in range(depth):
        p = f"{prefix}blocks.{i}."
        s.update({p + "norm1.weight": (width,), p + "norm1.bias": (width,), p + "attn.q_bias": (width,),
                  p + "attn.v_bias": (width,), p + "attn.qkv.weight": (3 * width, width),
                  p + "attn.proj.weight": (width, width), p + "attn.proj.bias": (width,),
                  p + "norm2.weight": (width,), p + "norm2.bias": (width,),
                  p + "mlp.fc1.weight": (4 * width, width), p + "mlp.fc1.bias": (4 * width,),
                  p + "mlp.fc2.weight": (width, 4 * width), p + "mlp.fc2.bias": (width,)})
    s.update({f"{prefix}{final}.weight": (width,), f"{prefix}{final}.bias": (width,)})
    if final == "fc_norm":
        s.update({"head.weight": (classes, width), "head.bias": (classes,)})
    if prefix:  # the MAE decoder of a pre-training checkpoint
        s.update({"encoder_to_decoder.weight": (384, width), "mask_token": (1, 1, 384),
                  "decoder.head.weight": (1536, 384)})
    return s


def _bn(s: dict[str, tuple[int, ...]], prefix: str, c: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        s[f"{prefix}.{name}"] = (c,)
    s[f"{prefix}.num_batches_tracked"] = ()


X3D_SE = {54: 8, 108: 8, 216: 16, 432: 32}  # SE widths of the published models (1/16, rounded to 8)


def x3d_shapes(family: str, depth_factor: float, classes: int = 400) -> dict[str, tuple[int, ...]]:
    """PySlowFast ``X3D_S/M/L.pyth`` (``model_state``) or MMAction2 ``x3d_s/m`` (``state_dict``) names."""
    psf = family == "pyslowfast"
    s: dict[str, tuple[int, ...]] = {}
    s["s1.pathway0_stem.conv_xy.weight" if psf else "backbone.conv1_s.conv.weight"] = (24, 3, 1, 3, 3)
    s["s1.pathway0_stem.conv.weight" if psf else "backbone.conv1_t.conv.weight"] = (24, 1, 5, 1, 1)
    _bn(s, "s1.pathway0_stem.bn" if psf else "backbone.conv1_t.bn", 24)
    c_in = 24
    for stage, base in enumerate((1, 2, 5, 3)):
        out = 24 * 2**stage
        inner = int(2.25 * out)
        for b in range(math.ceil(depth_factor * base)):
            cin = c_in if b == 0 else out
            p = f"s{stage + 2}.pathway0_res{b}." if psf else f"backbone.layer{stage + 1}.{b}."
            names = (("branch1", "branch1_bn", "branch2.a", "branch2.a_bn", "branch2.b", "branch2.b_bn",
                      "branch2.c", "branch2.c_bn", "branch2.se") if psf else
                     ("downsample.conv", "downsample.bn", "conv1.conv", "conv1.bn", "conv2.conv", "conv2.bn",
                      "conv3.conv", "conv3.bn", "se_module"))
            if b == 0:
                s[p + names[0] + ".weight"] = (out, cin, 1, 1, 1)
                _bn(s, p + names[1], out)
            s[p + names[2] + ".weight"] = (inner, cin, 1, 1, 1)
            _bn(s, p + names[3], inner)
            s[p + names[4] + ".weight"] = (inner, 1, 3, 3, 3)
            _bn(s, p + names[5], inner)
            s[p + names[6] + ".weight"] = (out, inner, 1, 1, 1)
            _bn(s, p + names[7], out)
            if b % 2 == 0:
                se = X3D_SE[inner]
                s.update({p + names[8] + ".fc1.weight": (se, inner, 1, 1, 1), p + names[8] + ".fc1.bias": (se,),
                          p + names[8] + ".fc2.weight": (inner, se, 1, 1, 1), p + names[8] + ".fc2.bias": (inner,)})
        c_in = out
    if psf:
        s["head.conv_5.weight"] = (432, 192, 1, 1, 1)
        _bn(s, "head.conv_5_bn", 432)
        s.update({"head.lin_5.weight": (2048, 432, 1, 1, 1), "head.projection.weight": (classes, 2048),
                  "head.projection.bias": (classes,)})
    else:
        s["backbone.conv5.conv.weight"] = (432, 192, 1, 1, 1)
        _bn(s, "backbone.conv5.bn", 432)
        s.update({"cls_head.fc1.weight": (2048, 432), "cls_head.fc2.weight": (classes, 2048),
                  "cls_head.fc2.bias": (classes,)})
    return s


# --- maps --------------------------------------------------------------------------------------------


def test_tiny_videomae_map_is_the_token_grid_at_stride_16() -> None:
    torch.manual_seed(0)
    vit = build_backbone("vit_b_videomae", width=32)
    assert (vit.width, vit.depth, vit.out_channels) == (32, 2, 32)
    out = vit(torch.randint(0, 255, (2, 3, 8, 64, 96), dtype=torch.uint8))
    assert [tuple(m.shape) for m in out.maps] == [(2, 32, 4, 4, 6)]
    assert torch.isfinite(out.maps[0]).all()
    with pytest.raises(ValueError, match="tubelet"):
        vit(torch.zeros(1, 3, 7, 64, 64))


def test_position_table_is_the_sine_cosine_formula_and_resizes_to_other_grids() -> None:
    t = sinusoid_table(10, 8)[0].double()
    pos, i = 3, 5  # odd dim: cos(pos / 10000 ** (2 * (i // 2) / d))
    assert t[pos, i].item() == pytest.approx(math.cos(pos / 10000 ** (2 * (i // 2) / 8)), abs=1e-6)
    assert t[pos, 4].item() == pytest.approx(math.sin(pos / 10000 ** (4 / 8)), abs=1e-6)
    vit = build_backbone("vit_b_videomae", width=32)
    assert vit.position_table((8, 14, 14)) is vit.pos_embed
    assert vit.position_table((8, 14, 14)).shape == (1, 8 * 14 * 14, 32)
    # 16 x 20 tokens (256 x 320 input): bicubic per temporal slice; corners stay the stored corners
    resized = vit.position_table((8, 16, 20)).reshape(8, 16, 20, 32)
    stored = vit.pos_embed.reshape(8, 14, 14, 32)
    assert resized.shape == (8, 16, 20, 32)
    assert not torch.allclose(resized[:, 0, 1], stored[:, 0, 1])
    assert vit.position_table((4, 14, 14)).shape == (1, 4 * 196, 32)


def test_tiny_x3d_map_keeps_time_and_reaches_stride_16() -> None:
    torch.manual_seed(0)
    x3d = build_backbone("x3d_s", width=8, blocks=(1, 1, 1, 1))
    assert x3d.out_channels == int(2.25 * 64)
    out = x3d(torch.randint(0, 255, (2, 3, 5, 70, 96), dtype=torch.uint8))
    assert [tuple(m.shape) for m in out.maps] == [(2, 144, 5, 5, 6)]
    # the classification variant (res5 stride 2) halves the map again
    x32 = build_backbone("x3d_s", width=8, blocks=(1, 1, 1, 1), res5_stride=2)
    assert tuple(x32(torch.zeros(1, 3, 4, 64, 64)).maps[0].shape) == (1, 144, 4, 2, 2)


# --- checkpoint import ------------------------------------------------------------------------------


def _assert_exact(report, state: dict[str, torch.Tensor], model: torch.nn.Module, rename) -> None:  # noqa: ANN001
    assert report.ok, report.summary()
    assert not report.missing and not report.unexpected and not report.shape_mismatched
    own = model.state_dict()
    for key in report.loaded:
        assert torch.equal(own[key], state[rename(key)]), key


def test_videomae_b_imports_mmaction2_ava_checkpoint_exactly() -> None:
    """Full ViT-B shapes (86 M parameters)."""
    state = _rand(videomae_mmaction2_shapes(768, 12))
    vit = build_backbone("vit_b_videomae")
    report = load_backbone_checkpoint(vit, state)
    assert report.family == "mmaction2"
    assert report.head == ["roi_head.bbox_head.fc_cls.bias", "roi_head.bbox_head.fc_cls.weight"]
    assert len(report.loaded) == len(vit.state_dict()) == 12 * 13 + 5
    assert torch.equal(vit.pos_embed, state["backbone.pos_embed"])
    assert torch.equal(vit.blocks[11].mlp.fc2.weight, state["backbone.blocks.11.mlp.layers.1.weight"])
    assert torch.equal(vit.patch_embed.proj.weight, state["backbone.patch_embed.projection.weight"])
    assert report.ok, report.summary()


def test_videomae_l_imports_mmaction2_names_at_published_width() -> None:
    """ViT-L block shapes (1024 wide, 16 heads); two of its 24 blocks keep the test light."""
    from stad_core.models.videomae import VIT_SIZES

    assert VIT_SIZES["vit_l_videomae"] == {"width": 1024, "depth": 24, "num_heads": 16}
    state = _rand(videomae_mmaction2_shapes(1024, 2))
    vit = build_backbone("vit_l_videomae", depth=2)
    report = load_backbone_checkpoint(vit, state)
    assert report.ok and len(report.loaded) == 2 * 13 + 5, report.summary()


@pytest.mark.parametrize("kind", ["finetuned", "pretrained"])
def test_videomae_imports_the_original_release(kind: str, tmp_path: Path) -> None:
    prefix, final = ("", "fc_norm") if kind == "finetuned" else ("encoder.", "norm")
    state = _rand(videomae_original_shapes(64, 2, prefix, final))
    path = tmp_path / "videomae.pth"
    torch.save({"module": state} if kind == "finetuned" else {"model": state}, path)  # DeepSpeed / MAE files
    # mean-pooling fine-tuned models have no final token norm: build without one
    vit = build_backbone("vit_b_videomae", width=64, final_norm=(kind == "pretrained"))
    before = vit.pos_embed.clone()
    report = load_backbone_checkpoint(vit, path)
    assert report.family == ("videomae" if kind == "finetuned" else "videomae_pretrain")
    _assert_exact(report, state, vit, lambda k: prefix + k)
    assert torch.equal(vit.pos_embed, before)  # the fixed table is not stored: ours stays
    assert (kind == "finetuned") == (report.head == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"])


@pytest.mark.parametrize(("name", "factor"), [("x3d_s", 2.2), ("x3d_m", 2.2), ("x3d_l", 5.0)])
@pytest.mark.parametrize("family", ["pyslowfast", "mmaction2"])
def test_x3d_imports_published_checkpoints_exactly(name: str, factor: float, family: str) -> None:
    from stad_core.models.x3d import x3d_source_key

    state = _rand(x3d_shapes(family, factor))
    x3d = build_backbone(name)
    report = load_backbone_checkpoint(x3d, state)
    assert report.family == family
    _assert_exact(report, state, x3d, lambda k: x3d_source_key(k, family))
    head = {"pyslowfast": ["head.lin_5.weight", "head.projection.bias", "head.projection.weight"],
            "mmaction2": ["cls_head.fc1.weight", "cls_head.fc2.bias", "cls_head.fc2.weight"]}[family]
    assert report.head == head
    assert len(report.loaded) == len(x3d.state_dict())  # counters included


def test_wrong_family_files_give_a_clear_error(tmp_path: Path) -> None:
    x3d_file = tmp_path / "X3D_S.pyth"
    torch.save({"model_state": _rand(x3d_shapes("pyslowfast", 2.2))}, x3d_file)
    vit = build_backbone("vit_b_videomae", width=32)
    report = load_backbone_checkpoint(vit, x3d_file)
    assert not report.ok and report.missing and report.unexpected
    with pytest.raises(CheckpointMismatchError, match=r"VideoMAE ViT.*looks like X3D \(pyslowfast names\)"):
        report.check(x3d_file)
    # through the builder (what finetune's `weights:` does): a StadError naming the file, no crash
    with pytest.raises(StadError, match="X3D_S.pyth: checkpoint does not fit the VideoMAE ViT"):
        build_backbone("vit_b_videomae", width=32, weights_path=x3d_file)
    # X3D-L weights into X3D-S: the extra blocks are reported, not silently dropped
    with pytest.raises(StadError, match=r"unexpected.*X3D \(pyslowfast names\)"):
        load_backbone_checkpoint(build_backbone("x3d_s"), _rand(x3d_shapes("pyslowfast", 5.0))).check()
    # a ViT-B file into ViT-L: shape mismatches
    small = _rand(videomae_mmaction2_shapes(768, 1))
    report = load_backbone_checkpoint(build_backbone("vit_l_videomae", depth=1), small)
    assert report.shape_mismatched and not report.ok
    # an MMAction2 SlowFast file into X3D
    slowfast = build_backbone("slowfast_r50", width=8, blocks=(1, 1, 1, 1), family="mmaction2").state_dict()
    with pytest.raises(StadError, match=r"looks like SlowFast/SlowOnly ResNet \(mmaction2 names\)"):
        load_backbone_checkpoint(build_backbone("x3d_s", width=8, blocks=(1, 1, 1, 1)),
                                 {mmaction2_key(k, True): v for k, v in slowfast.items()}).check()


def test_weights_path_loads_through_the_builder(tmp_path: Path) -> None:
    state = _rand(x3d_shapes("mmaction2", 2.2))
    path = tmp_path / "x3d_s_mmaction2.pth"
    torch.save({"state_dict": state, "meta": {"epoch": 1}}, path)
    x3d = build_backbone("x3d_s", weights_path=path)
    assert torch.equal(x3d.conv5.conv.weight, state["backbone.conv5.conv.weight"])
