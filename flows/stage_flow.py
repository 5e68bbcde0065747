"""The one stage preamble every flow shares: plan, reuse or begin, one task per video, the finish
task, commit. The stage's logic is in ``storage.stages``; this module only adds Prefect: tasks,
GPU gating and Dask resource annotations.

Per-video tasks resume on their own (``storage.resume`` markers next to the data); Prefect's cache
is off on purpose (``NO_CACHE``, no persisted results): the markers are keyed by inputs + config
hash + code version, survive a lost Prefect database, and big data never enters the result store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.cluster import await_result, check_worker_imports
from flows.gpu import GpuFallback, check_dask_gpus, ensure_gpu_limit, gpu_device, submit_task, using_dask_runner
from flows.registry import resolve_config
from stad_core.config import StageConfig
from stad_core.errors import StadError
from storage.resume import VideoResult
from storage.stages.base import Finished, Stage, StagePlan, VideoWork
from storage.stages.progress import report_progress
from storage.stages.runner import commit_stage, plan_stage, raise_failures, reuse_or_begin, run_one_video
from storage.workspace import StageRef


@contextmanager
def _device(gpu: bool) -> Iterator[str]:
    """The device for a task body: a GPU slot's when the work wants one, else the CPU."""
    if gpu:
        with gpu_device() as held:
            yield held.device
    else:
        yield "cpu"


@task(name="stage-video", task_run_name="{stage.name}[{work.video_id}]", cache_policy=NO_CACHE, persist_result=False)
def video_task(stage: Stage, plan: StagePlan, work: VideoWork, force: bool, use_gpu: bool) -> VideoResult:
    """One video's work of ``stage`` (skipped when its marker says it is done)."""
    with _device(use_gpu) as device:
        return run_one_video(stage, plan, work, device=device, force=force)


@task(name="stage-finish", task_run_name="{stage.name}", cache_policy=NO_CACHE, persist_result=False)
def finish_task(stage: Stage, plan: StagePlan, use_gpu: bool) -> Finished:
    """The stage's whole-stage work (training, merging, the report)."""
    assert stage.finish is not None
    with _device(use_gpu) as device:
        return stage.finish(plan, device)


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


def gate_gpu(gpu: bool, address: str | None) -> bool:
    """Whether GPU work may be annotated/throttled here. On Dask (``address``) every worker must
    import the project and some worker must offer a GPU (tasks would wait forever otherwise);
    locally the concurrency limit must exist to throttle."""
    if address is not None:
        check_worker_imports(address)
        return check_dask_gpus(address, _gpu_fallback()) if gpu else False
    if gpu:
        ensure_gpu_limit()
    return gpu


def _result(future: Any, address: str | None, gpu: bool) -> Any:
    # On Dask a lost worker must end the wait with an error, never a hang.
    return future.result() if address is None else await_result(future, address, gpu=gpu)


def run_stage_flow(name: str | Stage, config: StageConfig | Mapping[str, Any] | None, workspace: str,
                   force: bool = False, *, config_file: str | None = None, **upstream: StageRef | None) -> StageRef:
    """Run stage ``name`` (a registry name or a Stage) inside the current flow; returns its
    committed (or reused) StageRef. ``config``: a model, or a partial mapping merged over
    ``config_file`` (see ``flows.registry.resolve_config``)."""
    if isinstance(name, str):
        config = resolve_config(name, config, config_file)
    stage, ws, plan = plan_stage(name, config, workspace, upstream)
    done = reuse_or_begin(stage, ws, plan, force=force)
    if done is not None:
        return done
    address = _dask_address_of_current_runner() if using_dask_runner() else None
    gpu = gate_gpu(stage.gpu if plan.gpu is None else plan.gpu, address)
    results = map_videos(stage, plan, force=force, gpu=gpu, address=address)
    finished = Finished()
    if stage.finish is not None:
        finished = _result(submit_task(finish_task, gpu=gpu, stage=stage, plan=plan, use_gpu=gpu), address, gpu)
    return commit_stage(ws, plan, results, finished)


def _light(plan: StagePlan) -> StagePlan:
    # Video tasks get the plan without its video list (each one's arguments travel with its task).
    return replace(plan, videos=())


def map_videos(stage: Stage, plan: StagePlan, *, force: bool, gpu: bool,
               address: str | None = None) -> list[VideoResult]:
    """Submit one task per video and wait for all; failures are reported together at the end."""
    if not plan.videos:
        return []
    light = _light(plan)
    futures = [submit_task(video_task, gpu=gpu, stage=stage, plan=light, work=work, force=force, use_gpu=gpu)
               for work in plan.videos]
    results: list[VideoResult] = []
    failures: list[tuple[str, BaseException]] = []
    for done, (work, future) in enumerate(zip(plan.videos, futures), start=1):
        try:
            results.append(_result(future, address, gpu))
        except Exception as exc:  # noqa: BLE001 - collected and re-raised as one error below
            failures.append((work.video_id, exc))
        report_progress(stage.name, done, len(plan.videos))
    raise_failures(stage.name, failures, len(plan.videos))
    return results

