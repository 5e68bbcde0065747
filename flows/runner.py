"""Where a flow's tasks run: the task runner (threads locally, Dask on a cluster) and Prefect's
environment for CLI entry points."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.gpu import GpuFallback, check_dask_gpus
from stad_core.errors import StadError


@dataclass(frozen=True)
class RunOptions:
    """How (not what) to run: not part of any output's identity."""

    workspace: str = "workspace"
    force: bool = False
    dask_address: str | None = None
    gpu_fallback: GpuFallback = "error"
    max_workers: int | None = None  # thread-pool size for local runs (None: Prefect's default)


def api_url() -> str | None:
    """The Prefect API URL in effect (env or profile); None means an ephemeral local server."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def task_runner_for(options: RunOptions) -> Any:
    """ThreadPoolTaskRunner locally; prefect-dask's DaskTaskRunner for ``options.dask_address``."""
    if options.dask_address is None:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=options.max_workers)
    # Dask workers are separate processes that report task states to the API themselves: with the
    # ephemeral server each would start its own private one and the run fails ("Failed to reach API").
    if api_url() is None:
        raise StadError(
            "--dask needs a real Prefect server that the Dask workers can reach: start one "
            "(`prefect server start` or docker compose up) and set PREFECT_API_URL, e.g. "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=options.dask_address)


def default_task_runner() -> Any:
    """The task runner a flow is *defined* with: Dask when ``STAD_DASK_ADDRESS`` is set.

    Deployment runs load the flow from its module, so an environment variable (set on the
    docker-compose worker) is how they reach the cluster; `stad run --dask` overrides per run.
    """
    address = os.environ.get("STAD_DASK_ADDRESS")
    if address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner()


def inherit_runner(flow: Any) -> Any:
    """``flow`` set to run its tasks where the calling flow runs them (a subflow otherwise keeps the
    runner it was defined with: the pipeline on Dask would run every stage on local threads)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.task_runner is None:
        return flow
    return flow.with_options(task_runner=ctx.task_runner.duplicate())


def gpu_enabled_on_dask(options: RunOptions) -> bool:
    """Up-front check before a GPU stage on Dask (fails fast or falls back, see flows.gpu)."""
    if options.dask_address is None:
        return True
    return check_dask_gpus(options.dask_address, options.gpu_fallback)


def prepare_prefect_env(home: Path | None = None, *, quiet: bool = False) -> None:
    """Set Prefect's environment before ``import prefect`` (settings are read at import).

    ``home``: use this PREFECT_HOME (its own SQLite database) unless the user configured a server
    (PREFECT_API_URL) or a home (PREFECT_HOME) — so ``stad demo`` works on a fresh machine without
    touching ``~/.prefect``. ``quiet``: only warnings from Prefect's loggers on the console.
    """
    # The embedded server migrates a fresh SQLite database on first start: on a busy or slow machine
    # that exceeds Prefect's default wait and the run dies before it began.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    # Its telemetry write races the migrations on SQLite ("database is locked" tracebacks).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if home is not None and not os.environ.get("PREFECT_API_URL") and not os.environ.get("PREFECT_HOME"):
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home.resolve())
    if quiet:
        # Progress bars and one `error:` line instead: Prefect's own logs (tracebacks of a failed
        # task included) only with --verbose.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")
