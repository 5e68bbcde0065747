"""`stad run`, `stad demo`, `stad serve`, `stad history`: stage flows from the command line.

Prefect is imported inside the commands (after its environment is prepared) so `stad --help`
stays fast and `stad demo` can point Prefect at a home of its own before it starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from flows.registry import FLOWS, load_stage_config  # light: the registry imports stage modules lazily


def run_stage(
    stage: str,
    config: Any,
    *,
    workspace: str,
    force: bool = False,
    dask: str | None = None,
    gpu_fallback: str = "error",
    workers: int | None = None,
) -> Any:
    """Run one stage flow (or the pipeline) with the chosen task runner; returns its StageRef(s)."""
    from flows.runner import RunOptions, gpu_enabled_on_dask, task_runner_for
    from flows.registry import get_flow

    spec = get_flow(stage)
    if gpu_fallback not in ("error", "cpu"):
        from stad_core.errors import ConfigError

        raise ConfigError(f"--gpu-fallback {gpu_fallback!r}: expected error or cpu")
    options = RunOptions(workspace=workspace, force=force, dask_address=dask, gpu_fallback=gpu_fallback,  # type: ignore[arg-type]
                         max_workers=workers)
    os.environ["STAD_GPU_FALLBACK"] = gpu_fallback  # read by map_videos inside the flow
    runner = task_runner_for(options)
    if spec.needs_gpu() and dask:
        gpu_enabled_on_dask(options)  # fail before any work when no worker offers a GPU
    flow = spec.load_flow().with_options(task_runner=runner)
    return flow(config=config, workspace=workspace, force=force)


def _refs(result: Any) -> list[tuple[str, Any]]:
    """(label, StageRef) pairs: the pipeline's keys (``train:lfb_max``) or the stage name."""
    if isinstance(result, Mapping):
        return list(result.items())
    if isinstance(result, list):
        return [(ref.stage, ref) for ref in result]
    return [(result.stage, result)]


def print_refs(result: Any, title: str, elapsed: float | None = None, *, root: str | None = None) -> None:
    """The StageRefs of a run as a table; ``root``: show output folders relative to the workspace."""
    from rich.console import Console
    from rich.table import Table

    def where(uri: str) -> str:
        prefix = (root or "").rstrip("/") + "/"
        return uri[len(prefix):] if root and uri.startswith(prefix) else uri

    table = Table(title=title, title_justify="left")
    labels = [label for label, _ in _refs(result)]
    table.add_column("stage", no_wrap=True, min_width=max(map(len, labels), default=5))  # never folded
    for column in ("status", "counts", "result", "config", "output"):
        table.add_column(column, overflow="fold")
    for label, ref in _refs(result):
        counts = ", ".join(f"{k} {v}" for k, v in ref.counts.items())
        table.add_row(label, "reused" if ref.reused else "ran", counts, result_of(ref), ref.config_hash, where(ref.uri))
    console = Console()
    console.print(table)
    if elapsed is not None:
        console.print(f"done in {elapsed:.1f} s")


def result_of(ref: Any) -> str:
    """The figure a stage output is for: frame-mAP of an evaluation, last val frame-mAP of a head."""
    import json

    from storage.workspace import read_text

    try:
        if ref.stage == "evaluate":
            return f"mAP {_pct(json.loads(read_text(ref.path('summary.json')))['mAP'])}"
        if ref.stage in ("train", "acfb"):
            history = json.loads(read_text(ref.path("metrics.json")))["history"]
            return f"val mAP {_pct(history[-1]['val_map'])}" if history and history[-1].get("val_map") is not None else ""
    except (OSError, ValueError, KeyError):
        return ""
    return ""


def _run_command(
    stage: str, config: Path | None, overrides: list[str] | None, workspace: str, force: bool,
    dask: str | None, gpu_fallback: str, workers: int | None, verbose: bool = False,
) -> None:
    """Check everything that can be checked without Prefect (settings, upstream outputs), then run
    on a reused Prefect server with progress bars and a results table."""
    from flows.runner import prepare_prefect_env
    from flows.server import ensure_server
    from storage.stages import STAGE_MODULES

    cfg = load_stage_config(stage, config, overrides or [])
    if stage in STAGE_MODULES:
        from storage.stages.runner import plan_stage

        plan_stage(stage, cfg, workspace)  # a missing upstream output is named now, not after start-up
    if dask and not os.environ.get("PREFECT_API_URL"):
        from stad_core.errors import StadError

        raise StadError("--dask needs a Prefect server the Dask workers can reach: start one (`prefect server "
                        "start` or docker compose up) and set PREFECT_API_URL for this command and the workers")
    prepare_prefect_env(quiet=not verbose)
    api = ensure_server()  # reuse the background server of an earlier command (or start it once)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = time.perf_counter()
    # Also when Prefect was imported before the URL was known (`python -m flows.<stage>`).
    with temporary_settings(updates={PREFECT_API_URL: api}):
        result = _with_progress(lambda: run_stage(stage, cfg, workspace=workspace, force=force, dask=dask,
                                                  gpu_fallback=gpu_fallback, workers=workers), disable=verbose)
    print_refs(result, f"stad run {stage}", time.perf_counter() - started)


# Typer option declarations shared by `stad run` and `python -m flows.<stage>`.
_CONFIG = typer.Option(None, "--config", "-c", help="YAML file of the stage's settings (e.g. configs/ingest.yaml).")
_OVERRIDES = typer.Argument(None, help="Settings as key=value (pipeline sections dotted: synth.videos=2).")
_WORKSPACE = typer.Option("workspace", "--workspace", "-w", envvar="STAD_WORKSPACE", help="Workspace root: local path or fsspec URI ($STAD_WORKSPACE).")
_FORCE = typer.Option(False, "--force", help="Recompute even if a complete output with this identity exists.")
_DASK = typer.Option(None, "--dask", envvar="STAD_DASK_ADDRESS", help="Run tasks on the Dask cluster at this scheduler address (needs PREFECT_API_URL).")
_FALLBACK = typer.Option("error", "--gpu-fallback", envvar="STAD_GPU_FALLBACK", help="On Dask without GPU workers: error (default) or cpu.")
_WORKERS = typer.Option(None, "--workers", help="Thread-pool size for local runs (default: Prefect's).")
_VERBOSE = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs instead of progress bars.")


def register(app: typer.Typer) -> None:
    """Add run, serve, server and history to ``app`` (`stad demo`: flows/cli/demo.py)."""

    @app.command("run")
    def run(
        stage: str = typer.Argument(..., help=f"One of: {', '.join(FLOWS)}."),
        overrides: list[str] = _OVERRIDES,
        config: Path | None = _CONFIG,
        workspace: str = _WORKSPACE,
        force: bool = _FORCE,
        dask: str | None = _DASK,
        gpu_fallback: str = _FALLBACK,
        workers: int | None = _WORKERS,
        verbose: bool = _VERBOSE,
    ) -> None:
        """Run one stage (or the whole pipeline) as a Prefect flow; complete outputs are reused."""
        _run_command(stage, config, overrides, workspace, force, dask, gpu_fallback, workers, verbose)

    @app.command("serve")
    def serve(
        workspace: str = _WORKSPACE,
        only: list[str] = typer.Option(None, "--only", help="Serve only these deployments (repeatable)."),
        config: list[str] = typer.Option(None, "--config", "-c", help="STAGE=FILE: default settings of a deployment "
                                         "(default: configs/<stage>.yaml when present)."),
        cron: list[str] = typer.Option(None, "--cron", help="NAME=\"CRON\": schedule a deployment (repeatable)."),
        interval: list[str] = typer.Option(None, "--interval", help="NAME=SECONDS: run a deployment every SECONDS."),
        limit: int | None = typer.Option(None, "--limit", help="Most flow runs executing at once."),
    ) -> None:
        """Serve every stage + pipeline as Prefect deployments (long-running). Uses PREFECT_API_URL, else
        the background server `stad run` uses (started if needed; `stad server status` prints its URL)."""
        from flows.server import ensure_server

        typer.echo(f"Prefect API: {ensure_server()}")  # before Prefect is imported
        from flows.deployments import parse_assignments, serve_deployments

        serve_deployments(
            workspace=workspace, only=only or None, configs=parse_assignments(config or [], "--config"),
            cron=parse_assignments(cron or [], "--cron"), interval={k: float(v) for k, v in parse_assignments(interval or [], "--interval").items()},
            limit=limit,
        )

    server_app = typer.Typer(help="The background Prefect server `stad run` starts once and reuses.",
                             no_args_is_help=True)
    app.add_typer(server_app, name="server")

    @server_app.command("status")
    def server_status() -> None:
        """Where the background server answers (nothing when none runs)."""
        from flows.server import prefect_home, read_record

        record = read_record()
        typer.echo(f"running: {record['api']} (pid {record['pid']}, home {record['home']})" if record
                   else f"no background server for PREFECT_HOME {prefect_home()}")

    @server_app.command("stop")
    def server_stop() -> None:
        """Stop the background server (the next `stad run` starts a new one)."""
        from flows.server import stop_server

        record = stop_server()
        typer.echo(f"stopped {record['api']} (pid {record['pid']})" if record else "no background server recorded")

    @app.command("history")
    def history(
        workspace: str = _WORKSPACE,
        stage: str | None = typer.Option(None, "--stage", help="Only this stage's outputs (no results table)."),
        results_only: bool = typer.Option(False, "--results", help="Only the results history."),
    ) -> None:
        """The results history (every evaluation, oldest first), then the complete stage outputs."""
        from rich.console import Console
        from rich.table import Table

        from storage.workspace import Workspace

        ws = Workspace(workspace)
        if stage is None:
            print_history(ws.root)
        if results_only:
            return
        refs = ws.history(stage)
        if not refs:
            typer.echo(f"{ws.root}: no complete stage outputs yet (run `stad demo` or `stad run STAGE`)")
            return
        latest = {s: ws.latest(s) for s in {r.stage for r in refs}}
        table = Table(title=f"stage outputs in {ws.root}", title_justify="left")
        for column in ("stage", "key", "config", "upstream", "code", "counts", "latest"):
            table.add_column(column, overflow="fold")
        for ref in refs:
            current = latest.get(ref.stage)
            table.add_row(
                ref.stage, ref.key, ref.config_hash, ", ".join(f"{k}:{v}" for k, v in ref.upstream.items()),
                ref.code_version, ", ".join(f"{k} {v}" for k, v in ref.counts.items()),
                "*" if current is not None and current.key == ref.key else "",
            )
        Console().print(table)


@contextmanager
def _demo_server() -> Iterator[None]:
    """The demo's own Prefect server (none when PREFECT_API_URL is set): gone when the demo ends."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import prefect_home, supervised_server

    with supervised_server(prefect_home()) as api, temporary_settings(updates={PREFECT_API_URL: api}):
        yield


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def print_results(refs: Mapping[str, Any], title: str, *, claims: bool = False) -> None:
    """One row per evaluated head: overall frame-mAP and per class group (from each summary.json);
    ``claims``: then one line per claim of what each head is for, with its margin (the demo)."""
    from rich.console import Console
    from rich.table import Table

    from storage.stages.evaluate import read_summary

    summaries = [read_summary(ref) for name, ref in refs.items() if name.startswith("evaluate:")]
    if not summaries:
        return
    groups = list(dict.fromkeys(g for s in summaries for g in s["groups"]))
    table = Table(title=title, title_justify="left")
    for column in ("head", "mAP", *groups, "epochs"):
        table.add_column(column, justify="left" if column == "head" else "right")
    for s in summaries:
        table.add_row(s["head"], _pct(s["mAP"]), *(_pct(s["groups"].get(g)) for g in groups), str(s["epoch"]))
    Console().print(table)
    if claims:
        print_claims({s["head"]: [{"all": s["mAP"], **s["groups"]}] for s in summaries})


def print_claims(results: Mapping[str, Any]) -> None:
    """One line per claim of what each head is for (``stad_core.evaluation.claims``), with its margin."""
    from stad_core.evaluation.claims import check_claims

    typer.echo("what each head is for (docs/heads.md), AP points:")
    for claim in check_claims(results):
        typer.echo(f"  {claim.line()}")


def print_history(workspace: str) -> None:
    """The results history parquet of ``workspace`` as a table (nothing when it is empty)."""
    from rich.console import Console
    from rich.table import Table

    from storage.stages.evaluate import workspace_history

    rows = workspace_history(workspace)
    if not rows:
        typer.echo(f"{workspace}: no evaluations yet (results history is empty)")
        return
    groups = list(dict.fromkeys(g for r in rows for g in r["groups"]))
    table = Table(title=f"results history of {workspace} (frame-mAP@0.5, %)", title_justify="left")
    for column in ("evaluated (UTC)", "head", "split", "mAP", *groups, "model", "bank"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r["evaluated_at"].strftime("%Y-%m-%d %H:%M:%S"), r["head"], r["split"], _pct(r["mAP"]),
                      *(_pct(r["groups"].get(g)) for g in groups), f"{r['model_stage']}:{r['model_key']}", r["extract_key"])
    Console().print(table)


def _with_progress(fn: Any, *, disable: bool) -> Any:
    """Run ``fn`` with one rich progress bar per stage, fed by the flows' progress reports."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from storage.stages.progress import progress_listener

    with Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=disable) as progress:
        bars: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=total)
            progress.update(bars[stage], completed=done, total=total)

        with progress_listener(update):
            return fn()


def stage_main(stage: str) -> None:
    """``python -m flows.<stage> [-c FILE] [key=value ...] [--force] ...``: the same as `stad run STAGE`."""
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @single.command()
    def _main(
        overrides: list[str] = _OVERRIDES,
        config: Path | None = _CONFIG,
        workspace: str = _WORKSPACE,
        force: bool = _FORCE,
        dask: str | None = _DASK,
        gpu_fallback: str = _FALLBACK,
        workers: int | None = _WORKERS,
        verbose: bool = _VERBOSE,
    ) -> None:
        _run_command(stage, config, overrides, workspace, force, dask, gpu_fallback, workers, verbose)

    from flows.cli import main

    main(single, prog_name=f"python -m flows.{stage}")
