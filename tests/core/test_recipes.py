"""The AVA recipe switches (RoI context, temporal max, MLP head, focal loss, more frames) and the
ready recipes in configs/recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from stad_core.config import load_config
from stad_core.extract import ExtractConfig
from stad_core.models.actor_features import roi_actor_features
from stad_core.stage_configs import PipelineConfig
from stad_core.train.losses import ActionLoss

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs" / "recipes").glob("*.yaml"))


def test_context_and_temporal_max_rows() -> None:
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 6, 4, 5, 7, generator=g), torch.randn(2, 3, 8, 5, 7, generator=g)]
    boxes = [torch.tensor([[0.1, 0.2, 0.5, 0.9], [0.3, 0.1, 0.9, 0.6]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]])]
    plain = roi_actor_features(maps, boxes, (80, 112))
    rows = roi_actor_features(maps, boxes, (80, 112), temporal_pool="max", with_context=True)
    assert plain.shape == (3, 9) and rows.shape == (3, 18)
    rois = torch.tensor([[0, 11.2, 16, 56, 72], [0, 33.6, 8, 100.8, 48], [1, 0, 0, 112, 80]])
    for p, m in enumerate(maps):
        c0 = (0, 6)[p]
        peak = m.amax(dim=2)
        expected = roi_align(peak, rois, 7, spatial_scale=1 / 16).amax(dim=(2, 3))
        assert torch.allclose(rows[:, c0:c0 + m.shape[1]], expected, atol=1e-6)
        glob = F.adaptive_avg_pool2d(peak, 7).amax(dim=(2, 3))  # [B, C]: the clip's context, per actor
        assert torch.allclose(rows[:, 9 + c0:9 + c0 + m.shape[1]], glob[[0, 0, 1]], atol=1e-6)
    assert torch.equal(rows[0, 9:], rows[1, 9:])  # same clip, same context
    config = ExtractConfig(roi_context=True, roi_temporal_pool="max", roi_output_size=8)
    assert config.feature_dim(2048) == 4096 and config.roi_recipe() == "roi_align8_tmax_smax_ctx"
    assert ExtractConfig().roi_recipe() == "roi_align7_tavg_smax"


def test_focal_gamma_1_is_mmaction2s_ava_focal_loss() -> None:
    """MMAction2's BBoxHeadAVA: mean(alpha * (1 - exp(-bce))**gamma * bce), alpha 1, gamma 1."""
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 5, generator=g) * 3, (torch.rand(6, 5, generator=g) > 0.7).float()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    mmaction2 = (1.0 * (1 - torch.exp(-bce)) ** 1.0 * bce).mean()
    ours = ActionLoss("focal", focal_gamma=1.0, focal_alpha=None)(logits, targets)
    assert torch.allclose(ours, mmaction2, atol=1e-6)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_are_valid_pipeline_configs_with_their_figure(path: Path) -> None:
    config = load_config(PipelineConfig, path)
    assert config.dataset == "files" and config.finetune.weights and config.finetune.train is None
    assert "reported" in path.read_text()
    config.finetune.knobs()  # the backbone constructor's arguments resolve
    if "context" in path.stem or "tricks" in path.stem:
        assert config.extract.roi_context
    if "tmax" in path.stem or "tricks" in path.stem:
        assert config.extract.roi_temporal_pool == "max" and config.train.mlp_hidden in (None, 4096)
    if "tricks" in path.stem:
        assert (config.extract.num_frames, config.extract.stride, config.train.loss) == (16, 4, "focal")


def test_recipes_cover_the_ablation() -> None:
    assert {p.stem for p in RECIPES} >= {
        "slowonly_k700_baseline", "slowonly_k700_context", "slowonly_k700_context_tmax",
        "slowonly_k700_context_tmax_mlp", "slowonly_k700_context_tmax_mlp_focal", "slowonly_k700_tricks_16x4",
        "slowonly_nl_k400_8x8", "videomae_vit_b_16x4", "videomae_vit_l_16x4"}
