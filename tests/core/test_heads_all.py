"""Behaviour every head must have: shapes, equivariance, batching/padding invariance, overfitting."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from stad_core.heads import HEADS, HeadArchitecture, HeadInputs, build_head

D, C, H, W, D_LT, L, D_AC, L2, K = 32, 16, 4, 4, 24, 12, 20, 10, 6



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: intra-op threads only add contention on a shared 2-core machine (100x here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CASES = {
    "linear": dict(head="linear"),
    "linear-mlp": dict(head="linear", mlp_hidden=16),
    "acrn": dict(head="acrn"),
    "lfb-avg": dict(head="lfb", fbo="avg"),
    "lfb-max": dict(head="lfb", fbo="max"),
    "lfb-nl": dict(head="lfb", fbo="nl"),
    "acar": dict(head="acar"),
    "acfb": dict(head="acfb"),
}


def make_head(case: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    head = build_head(HeadArchitecture(
        num_classes=K, actor_dim=D, context_dim=C, long_term_dim=D_LT, actor_context_dim=D_AC,
        latent_dim=32, reduced_dim=16, relation_dim=16, num_layers=2, depth=2, norm_groups=4,
        **CASES[case],
    ))
    with torch.no_grad():  # move zero-initialised output layers off zero so every path matters
        for p in head.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return head.eval()


def make_batch(actors_per_clip: list[int], seed: int = 0) -> HeadInputs:
    """Random batch; window padding is filled with large garbage (it must never matter)."""
    g = torch.Generator().manual_seed(seed)
    b, n = len(actors_per_clip), sum(actors_per_clip)
    lt_mask = torch.rand(b, L, generator=g) < 0.6
    ac_mask = torch.rand(b, L2, generator=g) < 0.6
    long_term = torch.randn(b, L, D_LT, generator=g)
    long_term[~lt_mask] = 1e3 * torch.randn(int((~lt_mask).sum()), D_LT, generator=g)
    actor_context = torch.randn(b, L2, D_AC, generator=g)
    actor_context[~ac_mask] = -1e3
    xy = torch.rand(n, 2, generator=g) * 0.5
    return HeadInputs(
        actor_features=torch.randn(n, D, generator=g).relu(),
        actor_boxes=torch.cat([xy, xy + 0.4], dim=1),
        clip_index=torch.repeat_interleave(torch.arange(b), torch.tensor(actors_per_clip)),
        num_clips=b,
        context=torch.randn(b, C, H, W, generator=g),
        long_term=long_term,
        long_term_mask=lt_mask,
        actor_context=actor_context,
        actor_context_mask=ac_mask,
    )


def select_clips(batch: HeadInputs, clips: list[int]) -> tuple[HeadInputs, torch.Tensor]:
    """The sub-batch of the given clips (in that order) and the actor rows it keeps."""
    clips_t = torch.tensor(clips)
    remap = torch.full((batch.num_clips,), -1, dtype=torch.long)
    remap[clips_t] = torch.arange(len(clips))
    rows = torch.cat([torch.nonzero(batch.clip_index == c).flatten() for c in clips])
    sub = HeadInputs(
        actor_features=batch.actor_features[rows],
        actor_boxes=batch.actor_boxes[rows],
        clip_index=remap[batch.clip_index[rows]],
        num_clips=len(clips),
        context=batch.context[clips_t],
        long_term=batch.long_term[clips_t],
        long_term_mask=batch.long_term_mask[clips_t],
        actor_context=batch.actor_context[clips_t],
        actor_context_mask=batch.actor_context_mask[clips_t],
    )
    return sub, rows


def test_every_head_has_a_case() -> None:
    assert {c["head"] for c in CASES.values()} == set(HEADS)


@pytest.mark.parametrize("case", CASES)
def test_shapes_and_finite(case: str) -> None:
    head = make_head(case)
    batch = make_batch([2, 0, 3, 1])
    logits = head(batch)
    assert logits.shape == (6, K)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("case", CASES)
def test_actor_permutation_equivariance(case: str) -> None:
    head = make_head(case)
    batch = make_batch([3, 2, 4])
    perm = torch.randperm(batch.num_actors, generator=torch.Generator().manual_seed(1))
    shuffled = replace(
        batch,
        actor_features=batch.actor_features[perm],
        actor_boxes=batch.actor_boxes[perm],
        clip_index=batch.clip_index[perm],
    )
    torch.testing.assert_close(head(shuffled), head(batch)[perm], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_batching_never_changes_an_actor_output(case: str) -> None:
    """Any grouping/order of clips (hence any per-clip padding) gives the same per-actor logits."""
    head = make_head(case)
    batch = make_batch([1, 4, 0, 2])
    full = head(batch)
    for clips in ([0], [1], [3], [3, 0], [2, 1, 0], [3, 2, 1, 0]):
        sub, rows = select_clips(batch, clips)
        torch.testing.assert_close(head(sub), full[rows], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["lfb-avg", "lfb-max", "lfb-nl", "acfb"])
def test_window_padding_is_ignored_but_real_rows_matter(case: str) -> None:
    head = make_head(case)
    batch = make_batch([2, 3])
    field, mask_field = ("long_term", "long_term_mask") if case.startswith("lfb") else ("actor_context", "actor_context_mask")
    values, mask = getattr(batch, field), getattr(batch, mask_field)
    base = head(batch)
    garbage = values.clone()
    garbage[~mask] = torch.randn(int((~mask).sum()), values.shape[-1]) * 50
    torch.testing.assert_close(head(replace(batch, **{field: garbage})), base)
    # dropping the padding altogether (a shorter window) changes nothing either
    keep = mask.sum(1).max()
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :keep]
    short = replace(
        batch,
        **{field: torch.gather(values, 1, order[..., None].expand(-1, -1, values.shape[-1])),
           mask_field: torch.gather(mask, 1, order)},
    )
    torch.testing.assert_close(head(short), base, rtol=1e-5, atol=1e-5)
    # ...while changing one real row of clip 0 changes clip 0's actors only
    changed = values.clone()
    changed[0, int(torch.nonzero(mask[0])[0])] += 5.0
    out = head(replace(batch, **{field: changed}))
    assert not torch.allclose(out[:2], base[:2])
    torch.testing.assert_close(out[2:], base[2:])


@pytest.mark.parametrize("case", ["lfb-avg", "lfb-max", "lfb-nl", "acfb"])
def test_empty_window_gives_finite_outputs_and_gradients(case: str) -> None:
    head = make_head(case).train()
    batch = make_batch([2, 1])
    batch = replace(
        batch,
        long_term_mask=torch.zeros_like(batch.long_term_mask),
        actor_context_mask=torch.zeros_like(batch.actor_context_mask),
    )
    logits = head(batch)
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


@pytest.mark.parametrize("case", ["acar", "acfb"])
def test_relations_stay_inside_a_clip(case: str) -> None:
    head = make_head(case)
    batch = make_batch([3, 2])
    base = head(batch)
    feats = batch.actor_features.clone()
    feats[0] += 3.0  # actor 0 of clip 0
    out = head(replace(batch, actor_features=feats))
    assert not torch.allclose(out[1:3], base[1:3], atol=1e-4)  # its clip-mates see the change
    torch.testing.assert_close(out[3:], base[3:])  # the other clip does not


@pytest.mark.parametrize("case", CASES)
def test_overfits_a_tiny_batch(case: str) -> None:
    torch.manual_seed(0)
    head = make_head(case).train()
    batch = make_batch([3, 2, 3], seed=3)
    targets = (torch.rand(batch.num_actors, K, generator=torch.Generator().manual_seed(4)) < 0.4).float()
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(120):
        loss = nn.functional.binary_cross_entropy_with_logits(head(batch), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        final = nn.functional.binary_cross_entropy_with_logits(head(batch), targets)
        predicted = head(batch) > 0
    assert final < 0.15, f"{case}: loss {final:.3f}"
    assert torch.equal(predicted, targets.bool())
