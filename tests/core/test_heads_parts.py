"""Building blocks of the heads: per-clip padding, masked softmax, construction, initialisation."""

from __future__ import annotations

import pytest
import torch

from stad_core.errors import ConfigError
from stad_core.heads import ACARHead, ACFBHead, HeadInputs, LFBHead, build_head, masked_softmax, pad_by_clip


def test_pad_by_clip_round_trips_and_masks() -> None:
    x = torch.arange(12.0).reshape(6, 2)
    clip = torch.tensor([2, 0, 2, 2, 0, 3])
    padded, mask, slot = pad_by_clip(x, clip, num_clips=4)
    assert padded.shape == (4, 3, 2)
    assert mask.tolist() == [[True, True, False], [False] * 3, [True] * 3, [True, False, False]]
    assert slot.tolist() == [0, 0, 1, 2, 1, 0]  # order of appearance inside each clip
    assert torch.equal(padded[clip, slot], x)
    assert torch.equal(padded[~mask], torch.zeros(int((~mask).sum()), 2))
    empty, empty_mask, _ = pad_by_clip(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 2)
    assert empty.shape == (2, 0, 2) and empty_mask.shape == (2, 0)


def test_masked_softmax_gives_zero_weight_to_masked_keys_and_rows() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    w = masked_softmax(scores, mask)
    assert w[0, 1] == 0 and torch.allclose(w[0], torch.softmax(torch.tensor([1.0, -1e30, 3.0]), 0))
    assert torch.equal(w[1], torch.zeros(3))


def test_build_head_checks_dimensions() -> None:
    with pytest.raises(ConfigError, match="context_dim"):
        build_head("acar", num_classes=3, actor_dim=8)
    with pytest.raises(ConfigError, match="long_term_dim"):
        build_head("lfb", num_classes=3, actor_dim=8)
    with pytest.raises(ConfigError, match="unknown head"):
        build_head("transformer", num_classes=3, actor_dim=8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown FBO"):
        LFBHead(8, 8, 3, operator="mean")  # type: ignore[arg-type]


def test_fresh_nonlocal_blocks_are_the_identity() -> None:
    """Zero-initialised output layers: before training, FBO-NL returns the projected query."""
    torch.manual_seed(0)
    head = LFBHead(8, 6, 3, latent_dim=16, num_layers=3).eval()
    inputs = HeadInputs(
        torch.randn(4, 8), torch.rand(4, 4), torch.tensor([0, 0, 1, 1]), 2,
        long_term=torch.randn(2, 5, 6), long_term_mask=torch.ones(2, 5, dtype=torch.bool),
    )
    torch.testing.assert_close(head.feature_bank_operator(inputs), head.project_short(inputs.actor_features))


def test_missing_inputs_are_named() -> None:
    head = ACARHead(8, 4, 3, reduced_dim=4, latent_dim=8, norm_groups=2)
    inputs = HeadInputs(torch.randn(2, 8), torch.rand(2, 4), torch.tensor([0, 0]), 1)
    with pytest.raises(ValueError, match="context"):
        head(inputs)
    with pytest.raises(ValueError, match="actor_context"):
        ACFBHead(8, 4, 5, 3, reduced_dim=4, latent_dim=8, norm_groups=2)(
            HeadInputs(torch.randn(2, 8), torch.rand(2, 4), torch.tensor([0, 0]), 1, context=torch.randn(1, 4, 2, 2))
        )
    with pytest.raises(ValueError, match="clip_index"):
        HeadInputs(torch.randn(2, 8), torch.rand(2, 4), torch.tensor([0, 1]), 1)
    with pytest.raises(ValueError, match="long_term_mask"):
        HeadInputs(torch.randn(2, 8), torch.rand(2, 4), torch.tensor([0, 0]), 1, long_term=torch.randn(1, 3, 4))


def test_acfb_starts_from_a_trained_acar_head() -> None:
    torch.manual_seed(0)
    acar = ACARHead(8, 4, 3, reduced_dim=4, latent_dim=8, norm_groups=2, depth=2)
    acfb = ACFBHead(8, 4, 5, 3, reduced_dim=4, latent_dim=8, norm_groups=2, depth=2)
    missing = acfb.load_acar_state_dict(acar.state_dict())
    assert sorted(missing) == sorted(
        f"hr2o.{i}.bank_{kind}.{p}" for i in range(2) for kind in ("key", "value") for p in ("weight", "bias")
    )
    for name, value in acar.state_dict().items():
        assert torch.equal(acfb.state_dict()[name], value)
    # actor-context features are the per-actor first-order maps averaged over space
    inputs = HeadInputs(torch.randn(3, 8), torch.rand(3, 4), torch.tensor([0, 1, 1]), 2, context=torch.randn(2, 4, 6, 6))
    maps = acar.first_order_maps(inputs)
    assert maps.shape == (3, 8, 3, 3)
    torch.testing.assert_close(acar.actor_context_features(inputs), maps.mean(dim=(2, 3)))
    with pytest.raises(ValueError, match="unexpected"):
        acfb.load_acar_state_dict({**acar.state_dict(), "extra.weight": torch.zeros(1)})


def test_acar_first_order_equals_a_conv_over_the_tiled_concatenation() -> None:
    """The split actor/context projection is exactly the paper's 1x1 conv over [tiled actor, context]."""
    torch.manual_seed(0)
    head = ACARHead(8, 4, 3, reduced_dim=6, latent_dim=8, norm_groups=2).eval()
    inputs = HeadInputs(torch.randn(3, 8), torch.rand(3, 4), torch.tensor([1, 0, 1]), 2, context=torch.randn(2, 4, 5, 5))
    conv = torch.nn.Conv2d(8 + 6, 8, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([head.actor_proj.weight, head.context_proj.weight[:, :, 0, 0]], dim=1)[:, :, None, None])
        conv.bias.copy_(head.context_proj.bias)
        context = head.reduce_context(inputs.context)[inputs.clip_index]  # [N, 6, 5, 5]
        tiled = inputs.actor_features[:, :, None, None].expand(-1, -1, 5, 5)
        expected = head.first_order(conv(torch.cat([tiled, context], dim=1)))
        torch.testing.assert_close(head.first_order_maps(inputs), expected)
