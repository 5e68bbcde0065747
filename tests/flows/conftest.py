"""Fixtures for flow tests: one Prefect test harness per session (entering it takes 10-13 s)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The test server's telemetry write races its SQLite migrations ("database is locked") and slows start-up.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[str]:
    """A temporary Prefect server + SQLite database for the whole session; yields its API URL.

    The start-up wait is generous: on a shared, loaded machine migrations can take a minute.
    """
    from prefect.settings import get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(get_current_settings().api.url)


@pytest.fixture()
def no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as on a CPU-only machine regardless of the host."""
    monkeypatch.setenv("STAD_GPUS", "0")
