"""Fixtures of the end-to-end tests (real server processes; see e2e_lib)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_lib import prefect_server as _prefect_server


@pytest.fixture()
def prefect_server(tmp_path: Path) -> Iterator[tuple]:
    with _prefect_server(tmp_path) as server:
        yield server
