"""The bank contract suite runs against every backend: a local directory and fsspec memory://."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["local", "memory"])
def bank_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "bank.zarr")
        return
    import fsspec

    path = f"bank-{uuid.uuid4().hex}"
    yield f"memory://{path}"
    fsspec.filesystem("memory").rm(f"/{path}", recursive=True)
