"""Extraction into zarr banks: the arrays on disk have the bank spec's dtype, and only that one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.proposals import KeyframeDetections
from stad_core.banks import BankError, BankSpec
from stad_core.extract import ExtractConfig, VideoJob, extract_features
from stad_core.models.backbones import build_backbone
from stad_core.video import encode_video
from storage.banks import open_bank

TINY = dict(width=8, blocks=(1, 1, 1, 1), alpha=4, family="mmaction2")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone("slowfast_r50", **TINY).eval()


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> VideoJob:
    """One 4 s video of a moving block (8 fps, 64x48) with two actors at keyframes 1 and 2."""
    frames = np.full((32, 48, 64, 3), 30, np.uint8)
    for i in range(32):
        frames[i, 10:40, i:i + 14] = (200, 120, 60)
    path = encode_video(tmp_path_factory.mktemp("video") / "v.mp4", frames, fps=8)
    boxes = np.array([[0.1, 0.2, 0.4, 0.9], [0.5, 0.1, 0.9, 0.8]])
    return VideoJob("v", path, [KeyframeDetections(KeyframeKey("v", t), boxes, np.ones(2), "test") for t in (1, 2)])


def _spec(kind: str, dim: int, dtype: str) -> BankSpec:
    grid = (2, 2) if kind == "context" else None
    return BankSpec(kind=kind, feature_dim=dim, dtype=dtype, backbone="slowfast_r50-tiny",
                    checkpoint_sha256="0" * 64, context_grid=grid)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_extract_writes_the_spec_dtype(backbone, job: VideoJob, tmp_path: Path, dtype: str) -> None:
    dim = backbone.out_channels
    config = ExtractConfig(num_frames=8, stride=2, short_side=48, batch_size=2, num_workers=0, dtype=dtype,
                           context_grid=2)
    rows_uri, ctx_uri = str(tmp_path / "long_term.zarr"), str(tmp_path / "context.zarr")
    bank = open_bank(rows_uri, "a", _spec("long_term", dim, dtype))
    ctx = open_bank(ctx_uri, "a", _spec("context", dim, dtype))
    extract_features([job], backbone, bank, config, context_writer=ctx)
    # What is on disk, read back without the bank code.
    rows = zarr.open_array(f"{rows_uri}/videos/v/v1/features", mode="r")
    maps = zarr.open_array(f"{ctx_uri}/videos/v/v1/maps", mode="r")
    assert rows.dtype == np.dtype(dtype) and rows.shape == (4, dim)
    assert maps.dtype == np.dtype(dtype) and maps.shape == (2, dim, 2, 2)
    assert open_bank(rows_uri, "r").read_video("v").features.dtype == np.dtype(dtype)


def test_extract_refuses_a_config_dtype_the_bank_does_not_store(backbone, job: VideoJob, tmp_path: Path) -> None:
    uri = str(tmp_path / "bank.zarr")
    bank = open_bank(uri, "a", _spec("long_term", backbone.out_channels, "float16"))
    config = ExtractConfig(num_frames=8, stride=2, short_side=48, num_workers=0, dtype="float32")
    with pytest.raises(BankError, match=r"extract config dtype float32 != bank spec dtype float16 \(ZarrBank"):
        extract_features([job], backbone, bank, config)
    assert bank.all_video_ids() == []  # refused before any video was processed
