"""Run-time plumbing shared by every stage flow: task runners, per-video mapping, progress, Prefect env.

Stage flows stay a few lines: plan the output (``Workspace.plan``), return early if it is complete,
map a per-video task over the videos with :func:`map_videos`, commit the StageRef.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.gpu import GpuFallback, check_dask_gpus, ensure_gpu_limit, gpu_device, submit_task, using_dask_runner
from flows.resume import VideoResult, WorkKey, run_video
from stad_core.errors import StadError

log = logging.getLogger("stad.flows")

# ---------------------------------------------------------------------------------------------
# Progress: the CLI listens in-process; flows report per stage (harmless when nobody listens).

ProgressListener = Callable[[str, int, int], None]
_listeners: list[ProgressListener] = []


@contextmanager
def progress_listener(fn: ProgressListener) -> Iterator[None]:
    _listeners.append(fn)
    try:
        yield
    finally:
        _listeners.remove(fn)


def report_progress(stage: str, done: int, total: int) -> None:
    for fn in list(_listeners):
        fn(stage, done, total)


# ---------------------------------------------------------------------------------------------
# Run options and task runners


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


def _gpu_fallback() -> GpuFallback:
    value = os.environ.get("STAD_GPU_FALLBACK", "error")
    if value not in ("error", "cpu"):
        raise StadError(f"STAD_GPU_FALLBACK={value!r}: expected error or cpu")
    return value  # type: ignore[return-value]


def _dask_address_of_current_runner() -> str | None:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx is not None else None
    address = getattr(runner, "address", None)
    if address is None and getattr(runner, "_client", None) is not None:
        address = runner._client.scheduler.address  # type: ignore[union-attr]  # a temporary cluster
    return address


def gpu_enabled_on_dask(options: RunOptions) -> bool:
    """Up-front check before a GPU stage on Dask (fails fast or falls back, see flows.gpu)."""
    if options.dask_address is None:
        return True
    return check_dask_gpus(options.dask_address, options.gpu_fallback)


# ---------------------------------------------------------------------------------------------
# Per-video mapping

VideoWork = Callable[..., Mapping[str, int]]


def make_video_task(
    work: VideoWork, *, name: str, gpu: bool = False, is_complete: Callable[..., bool] | None = None
) -> Any:
    """A coarse Prefect task running ``work`` for one video with marker-based resume.

    ``work(video_id=..., stage_uri=..., device=..., **params)`` writes the video's outputs under
    ``stage_uri`` and returns small counts. Prefect's cache is off on purpose (``NO_CACHE``, no
    persisted results): the done markers in the workspace are keyed by the same inputs + config
    hash + code version and survive a lost Prefect database; big data never enters the result store.
    ``is_complete(video_id=..., stage_uri=..., **params)``: the storage's own completeness flag
    (e.g. a bank's per-video ``complete``); a marker only counts when it agrees.
    """
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    def run_one(video_id: str, stage_uri: str, key: WorkKey, force: bool, params: dict[str, Any]) -> VideoResult:
        def do() -> Mapping[str, int]:
            if gpu:
                with gpu_device() as lease:
                    return work(video_id=video_id, stage_uri=stage_uri, device=lease.device, **params)
            return work(video_id=video_id, stage_uri=stage_uri, device="cpu", **params)

        complete = None
        if is_complete is not None:
            def complete(vid: str) -> bool:
                return is_complete(video_id=vid, stage_uri=stage_uri, **params)

        return run_video(do, stage_uri, key, force=force, is_complete=complete)

    run_one.__name__ = name.replace("-", "_")
    run_one.__qualname__ = run_one.__name__
    return task(
        run_one,
        name=name,
        task_run_name=name + "[{video_id}]",
        cache_policy=NO_CACHE,
        persist_result=False,
        tags=["gpu"] if gpu else [],
    )


def map_videos(
    video_task: Any,
    video_ids: Sequence[str],
    *,
    stage: str,
    stage_uri: str,
    config_hash: str,
    code_version: str,
    inputs: Mapping[str, str],
    force: bool = False,
    gpu: bool = False,
    params: Mapping[str, Any] | None = None,
    per_video: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[VideoResult]:
    """Submit one task per video and wait for all; failures are reported together at the end.

    ``params`` go to every video's work, ``per_video[video_id]`` only to that one (its file, its
    keyframes). Every video is attempted even if some fail, so a re-run only has the failed ones
    left to do.
    """
    if gpu and using_dask_runner():
        # Dask leaves resource-annotated tasks pending forever when no worker has the resource.
        address = _dask_address_of_current_runner()
        if address is not None:
            gpu = check_dask_gpus(address, _gpu_fallback())
    elif gpu:
        ensure_gpu_limit()  # a missing limit would not throttle at all
    futures = []
    for video_id in video_ids:
        key = WorkKey(video_id=video_id, config_hash=config_hash, code_version=code_version, inputs=dict(inputs))
        futures.append(
            submit_task(
                video_task, gpu=gpu, video_id=video_id, stage_uri=stage_uri, key=key, force=force,
                params={**(params or {}), **((per_video or {}).get(video_id, {}))},
            )
        )
    results: list[VideoResult] = []
    failures: list[tuple[str, BaseException]] = []
    for done, (video_id, future) in enumerate(zip(video_ids, futures), start=1):
        try:
            results.append(future.result())
        except Exception as exc:  # noqa: BLE001 - collected and re-raised as one error below
            failures.append((video_id, exc))
        report_progress(stage, done, len(video_ids))
    if failures:
        first_id, first_exc = failures[0]
        raise StadError(
            f"{stage}: {len(failures)} of {len(video_ids)} videos failed (first: {first_id}: {first_exc}); "
            "completed videos are kept — re-run to retry only the failed ones"
        )
    return results


def summarise(results: Sequence[VideoResult]) -> dict[str, int]:
    """Counts for a StageRef: videos, how many ran vs. were skipped, and summed per-video counts."""
    counts: dict[str, int] = {"videos": len(results), "ran": sum(not r.skipped for r in results)}
    counts["skipped"] = counts["videos"] - counts["ran"]
    for result in results:
        for name, value in result.counts.items():
            counts[name] = counts.get(name, 0) + value
    return counts


# ---------------------------------------------------------------------------------------------
# Prefect environment for CLI entry points


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
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")


# ---------------------------------------------------------------------------------------------
# Stage pattern helpers


def reuse_or_begin(ws: Any, planned: Any, *, force: bool) -> Any | None:
    """The stored StageRef (marked ``reused``) if ``planned`` is complete and not forced; otherwise
    prepare its folder for (re)writing and return None."""
    from dataclasses import replace

    done = ws.load_complete(planned)
    if done is not None and not force:
        log.info("%s: reusing complete output %s", planned.stage, done.uri)
        return replace(done, reused=True)
    ws.begin(planned, force=force)
    return None


def stage_progress(stage: str) -> Callable[[int, int], None]:
    """An ``on_progress(done, total)`` for a stad_core function, forwarded to CLI listeners."""

    def on_progress(done: int, total: int) -> None:
        report_progress(stage, done, total)

    return on_progress


def work_inputs(planned: Any) -> dict[str, str]:
    """What a stage's per-video work keys depend on besides config and code: upstream keys + inputs."""
    return {**{f"upstream:{k}": v for k, v in planned.upstream.items()}, **planned.inputs}
