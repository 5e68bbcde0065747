"""`stad demo`: the whole pipeline on the synthetic dataset with an embedded Prefect (AVA keyframes, or
``--task temporal``), the results table with what each head is for, then `stad infer` on a new video."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from flows.cli.run import _WORKERS, _demo_server, _with_progress, print_refs, print_results, run_stage


def register(app: typer.Typer) -> None:
    """Add demo to ``app``."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("demo-data"), "--out", "-o", help="Folder for the workspace (and Prefect's home)."),
        preset: str = typer.Option("demo", "--preset", help="Synthetic dataset size: demo (48 x 60 s) or tiny (2 x 24 s)."),
        force: bool = typer.Option(False, "--force", help="Recompute every stage."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's logs instead of progress bars."),
        workers: int | None = _WORKERS,
        task: str = typer.Option("ava", "--task", help="ava (keyframe actions) or temporal (Coarse-Fine on a "
                                 "synthetic Charades-style dataset; presets demo, tiny)."),
    ) -> None:
        """Run the whole pipeline on the synthetic dataset with an embedded Prefect (no set-up)."""
        from flows.runner import prepare_prefect_env

        # Before Prefect is imported: a home (database, settings) under --out unless one is configured.
        prepare_prefect_env(out / ".prefect", quiet=not verbose)
        if task == "temporal":
            from flows.cli.temporal import demo_temporal

            return demo_temporal(out, preset, force=force, verbose=verbose, workers=workers)
        if task != "ava":
            raise typer.BadParameter(f"--task {task!r}: expected ava or temporal")
        from stad_core.stage_configs import demo_config

        config = demo_config(preset)
        started = time.perf_counter()
        with _demo_server():
            result = _with_progress(lambda: run_stage("pipeline", config, workspace=str(out), force=force,
                                                      workers=workers), disable=verbose)
        elapsed = time.perf_counter() - started
        from storage.workspace import Workspace

        print_refs(result, f"stad demo: pipeline on the synthetic '{preset}' dataset", root=Workspace(out).root)
        print_results(result, f"results: {config.evaluate.split} frame-mAP@0.5 (%), ground-truth boxes", claims=True)
        from rich.console import Console

        Console().print(f"done in {elapsed:.1f} s  (workspace {out}; `stad history -w {out}` lists every evaluation)")
        from flows.cli.infer import demo_infer  # the trained model on a video it never saw (`stad infer`)

        demo_infer(out, quiet=verbose)
