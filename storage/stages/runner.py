"""Run a stage in plain Python (no orchestrator): what benchmarks, scripts and tests call.

The Prefect flows in ``flows/`` do the same steps with tasks; both share every function here but
the loop over videos.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from stad_core.config import StageConfig
from storage.resume import VideoResult, WorkKey, run_video
from storage.stages import get_stage
from storage.stages.base import Finished, Stage, StagePlan, VideoWork
from storage.stages.progress import report_progress
from storage.workspace import CONFIG_FILE, StageRef, Workspace, write_text

log = logging.getLogger("stad.stages")


def plan_stage(name: str | Stage, config: StageConfig, workspace: str | Workspace,
               upstream: Mapping[str, StageRef | None] | None = None) -> tuple[Stage, Workspace, StagePlan]:
    """Resolve the upstream outputs and prepare stage ``name`` (a registry name or a Stage; nothing
    is written)."""
    stage = get_stage(name) if isinstance(name, str) else name
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    plan = stage.prepare(ws, config, stage.upstream_refs(ws, upstream))
    return stage, ws, plan


def reuse_or_begin(stage: Stage, ws: Workspace, plan: StagePlan, *, force: bool) -> StageRef | None:
    """The stored ref (marked ``reused``) if the planned output is complete and not forced;
    otherwise prepare its folder for (re)writing, run the stage's ``start``, and return None."""
    done = ws.load_complete(plan.ref)
    if done is not None and not force:
        log.info("%s: reusing complete output %s", stage.name, done.uri)
        return replace(done, reused=True)
    ws.begin(plan.ref, force=force)
    if stage.start is not None:
        stage.start(plan, force)
    return None


def run_one_video(stage: Stage, plan: StagePlan, work: VideoWork, *, device: str, force: bool,
                  wait: bool = True) -> VideoResult | None:
    """One video's work with marker-based resume (skipped when done with the same work key) under
    the video's lease (None when another run holds it and ``wait`` is False)."""
    assert stage.video is not None
    args = plan.video_args(work)
    key = WorkKey(video_id=work.video_id, config_hash=plan.ref.config_hash, code_version=plan.ref.code_version,
                  inputs=plan.work_inputs())
    flag = stage.video_complete
    complete = None if flag is None else (lambda vid: flag(**{**args, "video_id": vid}))
    return run_video(lambda: stage.video(**args, device=device, force=force), plan.ref.uri, key, force=force,
                     is_complete=complete, wait=wait)


def summarise(results: list[VideoResult]) -> dict[str, int]:
    """Counts for a StageRef: videos, how many ran vs. were skipped, and summed per-video counts."""
    counts: dict[str, int] = {"videos": len(results), "ran": sum(not r.skipped for r in results)}
    counts["skipped"] = counts["videos"] - counts["ran"]
    for result in results:
        for name, value in result.counts.items():
            counts[name] = counts.get(name, 0) + value
    return counts


def commit_stage(ws: Workspace, plan: StagePlan, results: list[VideoResult], finished: Finished) -> StageRef:
    """Write the stage's record last: its counts, and the inputs its finish added to the identity."""
    counts = {**(summarise(results) if plan.videos else {}), **finished.counts}
    # The effective config beside the record: what bundles, the viewer and a reader need to redo it.
    write_text(plan.ref.path(CONFIG_FILE), plan.config.model_dump_json(indent=1))
    return ws.commit(replace(plan.ref, counts=counts, inputs={**plan.ref.inputs, **finished.inputs}))


def run_stage(name: str | Stage, config: StageConfig, workspace: str | Workspace, *, force: bool = False,
              device: str = "cpu", upstream: Mapping[str, StageRef | None] | None = None) -> StageRef:
    """Run stage ``name`` to completion in this process (videos one after another).

    ``upstream``: the outputs to read (missing ones: the workspace's latest complete outputs).
    Returns the committed (or reused) StageRef. Per-video failures are collected and raised
    together after every video was attempted, so a re-run has only the failed ones left.
    """
    stage, ws, plan = plan_stage(name, config, workspace, upstream)
    done = reuse_or_begin(stage, ws, plan, force=force)
    if done is not None:
        return done
    results: list[VideoResult] = []
    failures: list[tuple[str, BaseException]] = []
    pending = list(plan.videos)
    while pending:
        # Videos another run is working on are left for later: both runs keep busy, none waits early.
        deferred = []
        last = len(pending) == 1
        for work in pending:
            try:
                result = run_one_video(stage, plan, work, device=device, force=force, wait=last)
            except Exception as exc:  # noqa: BLE001 - collected and re-raised as one error below
                failures.append((work.video_id, exc))
            else:
                if result is None:
                    deferred.append(work)
                    continue
                results.append(result)
            report_progress(stage.name, len(results) + len(failures), len(plan.videos))
        if deferred and len(deferred) == len(pending):
            time.sleep(0.5)  # everything left is in other hands: wait for their markers
        pending = deferred
    raise_failures(stage.name, failures, len(plan.videos))
    finished = stage.finish(plan, device) if stage.finish is not None else Finished()
    return commit_stage(ws, plan, results, finished)


def raise_failures(name: str, failures: list[tuple[str, BaseException]], total: int) -> None:
    """One error for every failed video (the first one's reason), or nothing."""
    from stad_core.errors import StadError

    if failures:
        first_id, first_exc = failures[0]
        raise StadError(
            f"{name}: {len(failures)} of {total} videos failed (first: {first_id}: {first_exc}); "
            "completed videos are kept — re-run to retry only the failed ones"
        )

