"""Shared fixtures.

``shared_data`` locates the real AVA files beside the repository (``../shared/data``) or at
``$STAD_SHARED_DATA``; tests that need them skip with a clear reason when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """The real-data folder, or None when this checkout has none beside it."""
    env = os.environ.get("STAD_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data folder not found: set STAD_SHARED_DATA or place it at ../shared/data")
    return path


@pytest.fixture(scope="session", autouse=True)
def _single_torch_thread() -> None:
    """Tests use tiny tensors: on a loaded 2-core machine intra-op threads only add contention
    (measured: small head tests up to 100x slower with 2 threads than with 1)."""
    import torch

    torch.set_num_threads(1)
