"""input_norm: fixed per-column standardisation of actor (and long-term) rows, inside every head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stad_core.heads import HeadInputs, build_head
from stad_core.heads.input_norm import MIN_STD, InputNorm
from stad_core.train import TrainConfig

DIMS = dict(num_classes=3, actor_dim=6, context_dim=4, long_term_dim=6, actor_context_dim=5, latent_dim=8,
            reduced_dim=4, relation_dim=8, norm_groups=2)


def _inputs(actors: torch.Tensor) -> HeadInputs:
    torch.manual_seed(1)
    return HeadInputs(actors, torch.tensor([[0.1, 0.1, 0.4, 0.9], [0.5, 0.2, 0.7, 0.8], [0.2, 0.3, 0.5, 0.9]]),
                      torch.tensor([0, 0, 1]), 2, context=torch.randn(2, 4, 4, 4),
                      long_term=torch.randn(2, 5, 6) * 3 + 2, long_term_mask=torch.rand(2, 5) > 0.2,
                      actor_context=torch.randn(2, 5, 5), actor_context_mask=torch.rand(2, 5) > 0.2)


def test_statistics_standardise_rows_and_spare_dead_columns() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal([5.0, -1.0, 0.0], [2.0, 0.1, 0.0], size=(500, 3))  # last column: dead (constant)
    norm = InputNorm(3)
    norm.set_statistics(rows)
    x = torch.from_numpy(rows).float()
    out = norm(HeadInputs(x, torch.rand(500, 4), torch.zeros(500, dtype=torch.long), 1)).actor_features
    torch.testing.assert_close(out[:, :2].mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    assert torch.equal(out[:, 2], torch.zeros(500)) and norm.std[2] == MIN_STD
    with pytest.raises(ValueError, match="rows"):
        norm.set_statistics(np.zeros((0, 3)))


@pytest.mark.parametrize("variant", [dict(head="linear"), dict(head="acrn"), dict(head="lfb", fbo="max"),
                                     dict(head="lfb", fbo="nl"), dict(head="acar"), dict(head="acfb")])
def test_a_normalised_head_equals_the_plain_head_on_standardised_rows(variant: dict) -> None:
    """Same weights: input_norm with (mean, std) on x gives the plain head's logits on (x - mean) / std,
    for actor rows and (LFB) long-term window rows alike; the statistics are part of the state dict."""
    config = TrainConfig(**DIMS, **variant)
    torch.manual_seed(0)
    normed = build_head(config.model_copy(update={"input_norm": True})).eval()
    plain = build_head(config).eval()
    state = {k: v for k, v in normed.state_dict().items() if not k.startswith("input_norm.")}
    plain.load_state_dict(state)
    assert {"input_norm.mean", "input_norm.std"} <= set(normed.state_dict())
    mean, std = torch.tensor([1.0, -2, 0, 3, 0.5, 0]), torch.tensor([2.0, 0.5, 1, 4, 1, 3])
    normed.input_norm.mean.copy_(mean)
    normed.input_norm.std.copy_(std)
    x = torch.randn(3, 6) * 3
    raw = _inputs(x)
    standardised = HeadInputs(**{**raw.__dict__, "actor_features": (x - mean) / std,
                                 "long_term": (raw.long_term - mean) / std})
    with torch.no_grad():
        torch.testing.assert_close(normed(raw), plain(standardised))
        assert not torch.allclose(normed(raw), plain(raw))
