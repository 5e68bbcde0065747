"""MViT v2-B / S: checkpoint names and shapes of PySlowFast's MVITv2_B_32x3 / MVITv2_S_16x4 and MMAction2's
MViT base / small (relative position tables included), and the stride-16 map."""

from __future__ import annotations

import pytest
import torch

from stad_core.errors import StadError
from stad_core.models import build_backbone, load_backbone_checkpoint


def mvit_shapes(family: str, depth: int, stages: tuple[int, ...], frames: int, classes: int = 400,
                size: int = 224) -> dict[str, tuple[int, ...]]:
    """Written from the architecture: a stage's first block doubles channels and heads inside its
    attention and pools q 1x2x2; tables are 2 * max(q, kv) - 1 long at the trained size."""
    mma = family == "mmaction2"
    pre = "backbone." if mma else ""
    s: dict[str, tuple[int, ...]] = {
        pre + "cls_token": (1, 1, 96),
        pre + ("patch_embed.projection." if mma else "patch_embed.proj.") + "weight": (96, 3, 3, 7, 7),
        pre + ("patch_embed.projection." if mma else "patch_embed.proj.") + "bias": (96,),
    }
    q, t = size // 4, frames // 2
    for i in range(depth):
        stage = sum(d <= i for d in stages)
        c_in, c_out = 96 * 2 ** sum(d <= i - 1 for d in stages) if i else 96, 96 * 2**stage
        kv = q // max(1, 8 // 2**stage)  # k/v pooled from the block's input (adaptive stride 8, 4, 2, 1)
        if i in stages:
            q //= 2
        p = f"{pre}blocks.{i}."
        s.update({p + "norm1.weight": (c_in,), p + "norm1.bias": (c_in,),
                  p + "attn.qkv.weight": (3 * c_out, c_in), p + "attn.qkv.bias": (3 * c_out,),
                  p + "attn.proj.weight": (c_out, c_out), p + "attn.proj.bias": (c_out,),
                  p + "attn.rel_pos_h": (2 * max(q, kv) - 1, 96), p + "attn.rel_pos_w": (2 * max(q, kv) - 1, 96),
                  p + "attn.rel_pos_t": (2 * t - 1, 96),
                  p + "norm2.weight": (c_out,), p + "norm2.bias": (c_out,),
                  p + "mlp.fc1.weight": (4 * c_out, c_out), p + "mlp.fc1.bias": (4 * c_out,),
                  p + "mlp.fc2.weight": (c_out, 4 * c_out), p + "mlp.fc2.bias": (c_out,)})
        for x in "qkv":
            s.update({f"{p}attn.pool_{x}.weight": (96, 1, 3, 3, 3), f"{p}attn.norm_{x}.weight": (96,),
                      f"{p}attn.norm_{x}.bias": (96,)})
        if c_in != c_out:
            s.update({p + "proj.weight": (c_out, c_in), p + "proj.bias": (c_out,)})
    norm = pre + ("norm3." if mma else "norm.")
    s.update({norm + "weight": (768,), norm + "bias": (768,)})
    if not mma:
        s.update({"head.projection.weight": (classes, 768), "head.projection.bias": (classes,)})
    return s


@pytest.mark.parametrize("family", ["pyslowfast", "mmaction2"])
@pytest.mark.parametrize(("name", "depth", "stages", "frames"), [
    ("mvit_v2_b", 24, (2, 5, 21), 32), ("mvit_v2_s_16x4", 16, (1, 3, 14), 16)])
def test_mvit_imports_published_checkpoints_exactly(family: str, name: str, depth: int, stages: tuple[int, ...],
                                                    frames: int) -> None:
    from stad_core.models.mvit import mvit_source_key

    g = torch.Generator().manual_seed(0)
    shapes = mvit_shapes(family, depth, stages, frames)
    state = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    model = build_backbone(name)
    report = load_backbone_checkpoint(model, state)
    assert report.family == family and report.ok, report.summary()
    assert len(report.loaded) == len(model.state_dict())
    assert report.head == (["head.projection.bias", "head.projection.weight"] if family == "pyslowfast" else [])
    own = model.state_dict()
    for key in report.loaded:
        assert torch.equal(own[key].reshape(-1), state[mvit_source_key(key, family)].reshape(-1)), key
    last = model.model.blocks[depth - 1].attn
    assert tuple(last.rel_pos_h.shape) == (13, 96) and tuple(last.rel_pos_t.shape) == (frames - 1, 96)


def test_mvit_b_file_into_s_is_reported() -> None:
    state = {k: torch.zeros(s) for k, s in mvit_shapes("pyslowfast", 24, (2, 5, 21), 32).items()}
    with pytest.raises(StadError, match=r"MViT v2.*(unexpected|shape-mismatched).*looks like MViT v2 \(pyslowfast"):
        load_backbone_checkpoint(build_backbone("mvit_v2_s_16x4"), state).check()


def test_tiny_mvit_map_at_stride_16() -> None:
    model = build_backbone("mvit_v2_b", width=8)
    out = model(torch.randint(0, 255, (1, 3, 4, 64, 80), dtype=torch.uint8))
    assert [tuple(m.shape) for m in out.maps] == [(1, 64, 2, 4, 5)]
