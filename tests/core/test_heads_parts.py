"""Building blocks of the heads: per-clip padding, masked softmax, construction, initialisation."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from stad_core.errors import ConfigError
from stad_core.heads import (
    ACAR_ARCHITECTURE,
    HEAD_VARIANTS,
    ACARHead,
    ACFBHead,
    HeadArchitecture,
    HeadInputs,
    LFBHead,
    acar_architecture,
    box_masks,
    build_head,
    masked_softmax,
    pad_by_clip,
    variant_fields,
    variant_name,
)
from stad_core.train import TrainConfig


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
        build_head(HeadArchitecture(head="acar", num_classes=3, actor_dim=8))
    with pytest.raises(ConfigError, match="long_term_dim"):
        build_head(HeadArchitecture(head="lfb", num_classes=3, actor_dim=8))
    with pytest.raises(ValidationError, match="head"):
        HeadArchitecture(head="transformer", num_classes=3, actor_dim=8)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown head"):
        build_head(HeadArchitecture.model_construct(head="transformer"))  # type: ignore[arg-type]


def test_build_head_takes_a_train_config_as_is() -> None:
    """A TrainConfig is a HeadArchitecture: the same fields build the same head, no copying."""
    fields = dict(head="acfb", num_classes=3, actor_dim=8, context_dim=4, actor_context_dim=5, reduced_dim=4,
                  latent_dim=8, norm_groups=2, depth=2, actor_location=False)
    config = TrainConfig(**fields, lr=0.5, epochs=3)
    assert isinstance(config, HeadArchitecture)
    assert set(HeadArchitecture.model_fields) <= set(TrainConfig.model_fields)
    torch.manual_seed(0)
    a = build_head(config)
    torch.manual_seed(0)
    b = ACFBHead(8, 4, 5, 3, reduced_dim=4, latent_dim=8, norm_groups=2, depth=2, actor_location=False)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert acar_architecture(config) == dict(latent_dim=8, reduced_dim=4, depth=2, norm_groups=2, actor_location=False,
                                             input_norm=False)
    assert set(ACAR_ARCHITECTURE) <= set(HeadArchitecture.model_fields)


def test_head_variants_round_trip() -> None:
    assert "acfb" in HEAD_VARIANTS and "lfb_max" in HEAD_VARIANTS
    assert variant_fields("lfb_max") == {"head": "lfb", "fbo": "max"}
    assert variant_fields("acar") == {"head": "acar"}
    for name in HEAD_VARIANTS:
        config = TrainConfig(fbo="avg").model_copy(update=variant_fields(name))
        assert variant_name(config.head, config.fbo) == name
    with pytest.raises(ConfigError, match="unknown head variant 'lfb_mean'"):
        variant_fields("lfb_mean")
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
    assert missing and all(name.startswith(("query_proj.", "bank_proj.", "bank_blocks.")) for name in missing)
    for name, value in acar.state_dict().items():
        got = acfb.state_dict()[name]
        if name == "classifier.weight":  # [actor, relation] columns copied, long-range columns fresh
            assert torch.equal(got[:, : value.shape[1]], value) and got[:, value.shape[1]:].any()
        else:
            assert torch.equal(got, value)
    # actor-context features are the per-actor first-order maps averaged over space
    inputs = HeadInputs(torch.randn(3, 8), torch.rand(3, 4), torch.tensor([0, 1, 1]), 2, context=torch.randn(2, 4, 6, 6))
    maps = acar.first_order_maps(inputs)
    assert maps.shape == (3, 8, 3, 3)
    torch.testing.assert_close(acar.actor_context_features(inputs), maps.mean(dim=(2, 3)))
    # everything but the long-range path is the ACAR head: without those columns, the same logits ...
    window = dict(actor_context=torch.randn(2, 7, 5), actor_context_mask=torch.rand(2, 7) > 0.3)
    with_bank = HeadInputs(inputs.actor_features, inputs.actor_boxes, inputs.clip_index, 2, context=inputs.context, **window)
    acar.eval(), acfb.eval()
    long_range = acfb.classifier.weight[:, 8 + 8:].clone()
    with torch.no_grad():
        acfb.classifier.weight[:, 8 + 8:] = 0
    torch.testing.assert_close(acfb(with_bank), acar(inputs))
    with torch.no_grad():
        acfb.classifier.weight[:, 8 + 8:] = long_range
    # ... and once the blocks' outputs are non-zero, the window changes the result
    with torch.no_grad():
        for block in acfb.bank_blocks:
            block.out.weight.normal_()
    other = dict(actor_context=torch.randn(2, 7, 5), actor_context_mask=window["actor_context_mask"])
    changed = acfb(HeadInputs(inputs.actor_features, inputs.actor_boxes, inputs.clip_index, 2, context=inputs.context, **other))
    assert not torch.allclose(acfb(with_bank), changed)
    with pytest.raises(ValueError, match="unexpected"):
        acfb.load_acar_state_dict({**acar.state_dict(), "extra.weight": torch.zeros(1)})


def test_acar_first_order_equals_a_conv_over_the_tiled_concatenation() -> None:
    """The split actor/context/location projection is exactly a 1x1 conv over [tiled actor, context, box mask]."""
    torch.manual_seed(0)
    head = ACARHead(8, 4, 3, reduced_dim=6, latent_dim=8, norm_groups=2).eval()
    xy = torch.rand(3, 2) * 0.5
    boxes = torch.cat([xy, xy + 0.2 + torch.rand(3, 2) * 0.3], dim=1)
    inputs = HeadInputs(torch.randn(3, 8), boxes, torch.tensor([1, 0, 1]), 2, context=torch.randn(2, 4, 5, 5))
    conv = torch.nn.Conv2d(8 + 6 + 1, 8, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([head.actor_proj.weight, head.context_proj.weight[:, :, 0, 0],
                                     head.location_proj.weight[:, :, 0, 0]], dim=1)[:, :, None, None])
        conv.bias.copy_(head.context_proj.bias)
        context = head.reduce_context(inputs.context)[inputs.clip_index]  # [N, 6, 5, 5]
        tiled = inputs.actor_features[:, :, None, None].expand(-1, -1, 5, 5)
        expected = head.first_order(conv(torch.cat([tiled, context, box_masks(boxes, 5, 5)], dim=1)))
        torch.testing.assert_close(head.first_order_maps(inputs), expected)


def test_box_masks_cover_each_cell_by_the_boxes_share() -> None:
    # box x 0.25-0.75, y 0-0.5 on a 2x4 grid: rows 0 fully, 1 not; columns 1-2 fully, 0 and 3 not
    m = box_masks(torch.tensor([[0.25, 0.0, 0.75, 0.5], [0.0, 0.0, 0.125, 1.0]]), 2, 4)
    assert m.shape == (2, 1, 2, 4)
    torch.testing.assert_close(m[0, 0], torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(m[1, 0], torch.tensor([[0.5, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]]))
    # the covered area (in cells) equals the box area times the number of cells
    assert abs(float(m[0].sum()) - 0.5 * 0.5 * 8) < 1e-6
