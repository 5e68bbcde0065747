"""Deployments of every stage flow and the pipeline, served by `stad serve` (or `prefect deploy`
with prefect.yaml, which lists the same entry points for a worker in a work pool).

A deployment's default parameters are the stage's config file (``config_file``: ``configs/<stage>.yaml``
when it exists, or ``--config STAGE=FILE``; checked when served) and the workspace. A run's ``config``
is a partial mapping merged over that file, section by section, and validated before any work::

    prefect deployment run ingest/ingest -p workspace=/data/ws -p config='{"videos_dir": "..."}'
    prefect deployment run pipeline/pipeline -p config='{"synth": {"videos": 8}}'

Schedules come from ``--cron NAME=EXPR`` / ``--interval NAME=SECONDS``; the ``reevaluate``
deployment (evaluate new checkpoints/banks, append to the results history, publish artifacts) runs
hourly (``REEVALUATE_CRON``) unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flows.registry import FLOWS, REEVALUATE_CRON, get_flow, load_stage_config
from stad_core.errors import ConfigError, StadError


def parse_assignments(items: Iterable[str], option: str) -> dict[str, str]:
    """``["a=b", ...]`` -> ``{"a": "b"}`` for the NAME=VALUE options of `stad serve`."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{option} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip().strip('"').strip("'")
    return out


def default_parameters(stage: str, workspace: str, config_file: str | None = None) -> dict[str, Any]:
    """JSON parameters of a deployment: its config file (absolute, checked now) and the workspace."""
    default = get_flow(stage).config_file()
    path = config_file or (default if default and Path(default).is_file() else None)
    load_stage_config(stage, path)  # a broken file fails `stad serve`, not the first run
    params: dict[str, Any] = {"workspace": workspace}
    if path is not None:
        params["config_file"] = str(Path(path).resolve())
    return params


def build_deployments(
    workspace: str,
    *,
    only: Sequence[str] | None = None,
    configs: Mapping[str, str] | None = None,
    cron: Mapping[str, str] | None = None,
    interval: Mapping[str, float] | None = None,
) -> list[Any]:
    """RunnerDeployments named after their stage (``<flow>/<stage>``), loaded by module path."""
    from prefect.deployments.runner import EntrypointType

    names = list(only) if only else list(FLOWS)
    for name in [*names, *(configs or {}), *(cron or {}), *(interval or {})]:
        get_flow(name)  # a typo fails before anything is served
        if name not in names:
            raise StadError(f"{name!r} is scheduled or configured but not served (add it to --only)")
    deployments = []
    for name in names:
        spec = get_flow(name)
        schedule_cron = (cron or {}).get(name)
        if name == "reevaluate" and schedule_cron is None and name not in (interval or {}):
            schedule_cron = REEVALUATE_CRON  # its whole point is to run on a schedule
        deployments.append(
            spec.load_flow().to_deployment(
                name=name,
                parameters=default_parameters(name, workspace, (configs or {}).get(name)),
                cron=schedule_cron,
                interval=(interval or {}).get(name),
                description=spec.describe(),
                tags=["stad", "gpu"] if spec.needs_gpu() else ["stad"],
                entrypoint_type=EntrypointType.MODULE_PATH,
            )
        )
    return deployments


def serve_deployments(
    workspace: str,
    *,
    only: Sequence[str] | None = None,
    configs: Mapping[str, str] | None = None,
    cron: Mapping[str, str] | None = None,
    interval: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> None:
    """Register the deployments and execute their runs in this process until interrupted."""
    from prefect import serve

    from flows.gpu import ensure_gpu_limit
    from flows.runner import api_url

    if api_url() is None:
        # Served deployments are triggered from outside (UI, CLI, schedules): that needs a server
        # other processes can reach; an ephemeral one dies with this process.
        raise StadError("stad serve needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)")
    ensure_gpu_limit()
    serve(*build_deployments(workspace, only=only, configs=configs, cron=cron, interval=interval), limit=limit)

