"""`stad synth`: generate the synthetic STAD dataset (videos + AVA ground truth)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command to ``app``."""

    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to create (videos/, annotations/, dataset.json)."),
        preset: str = typer.Option("demo", "--preset", help="Named size: demo (48 x 60 s) or tiny (2 x 24 s, for tests)."),
        config: Path | None = typer.Option(
            None, "--config", "-c", help="YAML file of SynthConfig settings (e.g. configs/synth.yaml)."
        ),
        videos: int | None = typer.Option(None, "--videos", help="Number of videos."),
        seconds: int | None = typer.Option(None, "--seconds", help="Length of each video in seconds."),
        seed: int | None = typer.Option(None, "--seed", help="Master seed (same seed + settings = same dataset)."),
        workers: int | None = typer.Option(
            None, "--workers", help="Processes rendering videos in parallel (does not change the output)."
        ),
        force: bool = typer.Option(False, "--force", help="Replace a different dataset already in --out."),
        overrides: list[str] = typer.Argument(None, help="Further settings as key=value (e.g. actors_max=6 fps=12)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        task: str = typer.Option("ava", "--task", help="ava, or temporal: the Charades-layout temporal-activity "
                                 "dataset (docs/temporal.md; presets demo, tiny)."),
    ) -> None:
        """Render a deterministic synthetic dataset: actors, 12 action classes in 3 groups, AVA files.

        Precedence: preset < --config file < key=value overrides < the explicit options.
        """
        if task == "temporal":
            from flows.cli.temporal import synth_temporal

            return synth_temporal(out, preset, list(overrides or []), videos=videos, seed=seed, quiet=quiet)
        if task != "ava":
            raise typer.BadParameter(f"--task {task!r}: expected ava or temporal")
        import time

        from stad_core.config import load_config
        from stad_core.synth import SynthConfig, check_target, generate_dataset, preset_config

        from flows.cli.progress import progress_bar

        options = [f"{key}={value}" for key, value in (("videos", videos), ("seconds", seconds), ("seed", seed))
                   if value is not None]
        cfg = load_config(SynthConfig, config, [*(overrides or []), *options],
                          base=preset_config(preset).model_dump())
        if check_target(out, cfg, force=force):  # refuse or skip before drawing a progress bar
            typer.echo(f"{out}: identical dataset already present (config {cfg.config_hash()}); nothing to do")
            return
        started = time.perf_counter()
        with progress_bar("Rendering", disable=quiet) as on_progress:
            summary = generate_dataset(cfg, out, force=force, workers=workers or 1, on_progress=on_progress)
        elapsed = time.perf_counter() - started
        typer.echo(
            f"{out}: {summary.videos} videos, {summary.keyframes} keyframes, {summary.boxes} boxes, "
            f"{summary.rows} label rows, {summary.excluded} excluded keyframes in {elapsed:.1f} s "
            f"(config {cfg.config_hash()})"
        )
