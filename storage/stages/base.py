"""What a stage is: a config model plus plain functions over a workspace.

A stage run has four steps, the same everywhere (the plain runner in ``storage.stages.runner``,
the Prefect flows in ``flows/``, the benchmarks, the tests):

1. ``resolve``: the upstream outputs it reads (given, or the workspace's latest complete ones);
2. ``prepare``: the effective config and the planned identity (``StageRef``), plus the per-video
   work items, without writing anything;
3. ``start`` (when the output is not complete yet), then ``video`` once per work item (each
   resumable on its own through ``storage.resume``), then ``finish`` for the whole-stage work;
4. commit: the ``StageRef`` with its counts is written last.

Per-video and finish functions take only small, picklable arguments (ids, URIs, configs) so an
orchestrator can run them in other processes (Dask workers); they return small counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stad_core.config import StageConfig
from storage.workspace import StageRef, Workspace

Counts = dict[str, int]

# One model forward at a time on the CPU of a process: one forward already uses every core, so
# running several videos at once would only multiply memory. GPU work is throttled per device instead.
_CPU_SLOT = threading.Semaphore(1)


@contextmanager
def model_slot(device: str) -> Iterator[None]:
    """Hold the process's CPU model slot for the block (no-op on a GPU: the orchestrator throttles those)."""
    if device == "cpu":
        with _CPU_SLOT:
            yield
    else:
        yield


@dataclass(frozen=True)
class VideoWork:
    """One video's unit of work: its id and the arguments only it gets (its file, its keyframes)."""

    video_id: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StagePlan:
    """A prepared run: identity, effective config, upstream outputs and the work to do."""

    ref: StageRef  # the planned identity (uri, key); counts still empty
    config: StageConfig  # the effective config (what the identity hashes)
    upstream: dict[str, StageRef]
    videos: tuple[VideoWork, ...] = ()
    shared: dict[str, Any] = field(default_factory=dict)  # arguments of every video's work and of finish
    gpu: bool | None = None  # whether this run's work wants a GPU (None: the stage's default)

    def video_args(self, work: VideoWork) -> dict[str, Any]:
        """Keyword arguments of ``Stage.video`` for ``work`` (besides ``device``)."""
        return {"video_id": work.video_id, "stage_uri": self.ref.uri, **self.shared, **work.params}

    def work_inputs(self) -> dict[str, str]:
        """What per-video work keys depend on besides config and code: upstream keys + inputs."""
        return {**{f"upstream:{k}": v for k, v in self.ref.upstream.items()}, **self.ref.inputs}


@dataclass(frozen=True)
class Finished:
    """What ``Stage.finish`` reports: counts, and inputs that join the output's record (e.g. the
    exported weights' sha256, which downstream identities then include)."""

    counts: Counts = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # small results for the orchestrator (summaries)


Resolve = Callable[[Workspace, Mapping[str, StageRef]], dict[str, StageRef]]
Prepare = Callable[[Workspace, Any, dict[str, StageRef]], StagePlan]


@dataclass(frozen=True)
class Stage:
    """A registry entry: everything the CLI, the deployments, the pipeline and the runners need."""

    name: str
    config: type[StageConfig]
    summary: str
    upstream: tuple[str, ...]  # stages it reads; run alone, their latest complete outputs
    gpu: bool  # its video or finish work wants a GPU
    prepare: Prepare
    resolve: Resolve | None = None  # custom upstream lookup (default: given, else the latest of each)
    start: Callable[[StagePlan, bool], None] | None = None  # after the folder is begun: (plan, force)
    video: Callable[..., Mapping[str, int]] | None = None  # video(video_id=, stage_uri=, device=, **args)
    video_complete: Callable[..., bool] | None = None  # the storage's own per-video completeness flag
    finish: Callable[[StagePlan, str], Finished] | None = None  # finish(plan, device)
    default_config: str | None = None  # configs/<stage>.yaml, relative to the working directory

    def upstream_refs(self, ws: Workspace, given: Mapping[str, StageRef] | None = None) -> dict[str, StageRef]:
        """The upstream outputs: ``given`` ones, the rest the workspace's latest complete ones."""
        given = {k: v for k, v in (given or {}).items() if v is not None}
        if self.resolve is not None:
            return self.resolve(ws, given)
        return {name: given.get(name) or ws.require_latest(name, self.name) for name in self.upstream}
