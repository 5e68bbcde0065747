"""SlowOnly R50 + NonLocalEmbedGauss: MMAction2's AVA NL checkpoint names, and the block's maths."""

from __future__ import annotations

import torch

from stad_core.models import build_backbone, load_backbone_checkpoint
from stad_core.models.checkpoints import mmaction2_key
from stad_core.models.nonlocal_block import NonLocalEmbedGauss


def nonlocal_shapes() -> dict[str, tuple[int, ...]]:
    """``slowonly_kinetics400-pretrained-r50-nl_8xb16-*_ava21``: non_local=((0,0,0), (1,0,1,0),
    (1,0,1,0,1,0), (0,0,0)), sub-sampled embedded Gaussian, BN after conv_out."""
    s: dict[str, tuple[int, ...]] = {}
    for layer, channels, blocks in ((2, 512, (0, 2)), (3, 1024, (0, 2, 4))):
        inner = channels // 2
        for b in blocks:
            p = f"backbone.layer{layer}.{b}.non_local_block."
            for part in ("theta.conv", "phi.0.conv", "g.0.conv"):
                s[f"{p}{part}.weight"] = (inner, channels, 1, 1, 1)
                s[f"{p}{part}.bias"] = (inner,)
            s[f"{p}conv_out.conv.weight"] = (channels, inner, 1, 1, 1)
            for name in ("weight", "bias", "running_mean", "running_var"):
                s[f"{p}conv_out.bn.{name}"] = (channels,)
            s[f"{p}conv_out.bn.num_batches_tracked"] = ()
    return s


def test_slowonly_nl_imports_mmaction2_names_exactly() -> None:
    model = build_backbone("slowonly_r50_nl")
    nl = nonlocal_shapes()
    g = torch.Generator().manual_seed(0)
    # the ResNet part under its (separately tested) MMAction2 names, the non-local part written out above
    state = {mmaction2_key(k, False): torch.randn(v.shape, generator=g) if v.is_floating_point() else v
             for k, v in model.state_dict().items() if ".non_local." not in k}
    state.update({k: torch.randn(s, generator=g) if s else torch.tensor(3) for k, s in nl.items()})
    own_nl = {mmaction2_key(k, False) for k in model.state_dict() if ".non_local." in k}
    assert own_nl == set(nl)
    report = load_backbone_checkpoint(model, state)
    assert report.family == "mmaction2" and report.ok, report.summary()
    block = model.slow.res4[4].non_local
    assert torch.equal(block.phi.weight, state["backbone.layer3.4.non_local_block.phi.0.conv.weight"])
    assert torch.equal(block.bn.running_var, state["backbone.layer3.4.non_local_block.conv_out.bn.running_var"])
    assert model.slow.res4[1].non_local is None and model.slow.res2[0].non_local is None


def test_nonlocal_block_matches_its_definition() -> None:
    torch.manual_seed(0)
    block = NonLocalEmbedGauss(8).eval()
    assert torch.equal(block(torch.ones(1, 8, 2, 4, 4)), torch.ones(1, 8, 2, 4, 4))  # BN weight 0: identity
    torch.nn.init.normal_(block.bn.weight)
    x = torch.randn(2, 8, 2, 4, 6)
    theta = block.theta(x).flatten(2)  # [B, 4, N]
    pooled = torch.nn.functional.max_pool3d(x, (1, 2, 2))  # keys/values at a quarter of the positions
    phi = torch.nn.functional.max_pool3d(block.phi(x), (1, 2, 2)).flatten(2)
    g = torch.nn.functional.max_pool3d(block.g(x), (1, 2, 2)).flatten(2)
    assert phi.shape[-1] == pooled.shape[2] * pooled.shape[3] * pooled.shape[4] == 12
    w = torch.softmax(torch.einsum("bcn,bcm->bnm", theta, phi) / 2.0, dim=-1)  # sqrt(C/2) = 2
    y = torch.einsum("bnm,bcm->bcn", w, g).reshape(2, 4, 2, 4, 6)
    expected = x + block.bn(block.out(y))
    assert torch.allclose(block(x), expected, atol=1e-6)


def test_tiny_slowonly_nl_runs() -> None:
    model = build_backbone("slowonly_r50_nl", width=8, blocks=(1, 1, 1, 1))
    assert model.slow.res3[0].non_local is not None and model.slow.res5[0].non_local is None
    assert tuple(model(torch.zeros(1, 3, 4, 64, 64, dtype=torch.uint8)).maps[0].shape) == (1, 256, 4, 4, 4)
