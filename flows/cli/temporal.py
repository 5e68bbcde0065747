"""The temporal task kind in the CLI: `stad synth --task temporal` and `stad demo --task temporal`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer


def synth_temporal(out: Path, preset: str, overrides: list[str], *, videos: int | None, seed: int | None,
                   quiet: bool) -> None:
    """Render the synthetic temporal dataset into ``out`` (Charades layout; docs/temporal.md)."""
    from flows.cli.progress import progress_bar
    from stad_core.config import load_config
    from stad_core.temporal.configs import TEMPORAL_PRESETS
    from stad_core.errors import ConfigError
    from stad_core.temporal.synth import TemporalSynthConfig, write_dataset

    if preset not in TEMPORAL_PRESETS:
        raise ConfigError(f"unknown temporal preset {preset!r} (choose from: {', '.join(TEMPORAL_PRESETS)})")
    options = [f"{k}={v}" for k, v in (("videos", videos), ("seed", seed)) if v is not None]
    cfg = load_config(TemporalSynthConfig, None, [*overrides, *options], base=TEMPORAL_PRESETS[preset])
    started = time.perf_counter()
    with progress_bar("Rendering", disable=quiet) as on_progress:
        summary = write_dataset(cfg, out, on_progress=on_progress)
    typer.echo(f"{out}: {summary.videos} videos, {summary.activities} activities in "
               f"{time.perf_counter() - started:.1f} s (config {cfg.config_hash()})")


def demo_temporal(out: Path, preset: str, *, force: bool, verbose: bool, workers: int | None) -> None:
    """The temporal pipeline on the synthetic temporal dataset (the caller set up Prefect's home)."""
    from rich.console import Console
    from rich.table import Table

    from flows.cli.run import _demo_server, _with_progress, print_refs, run_stage
    from stad_core.temporal.configs import temporal_demo_config
    from storage.uri import local_path
    from storage.workspace import Workspace

    config = temporal_demo_config(preset)
    started = time.perf_counter()
    with _demo_server():
        result = _with_progress(lambda: run_stage("temporal_pipeline", config, workspace=str(out), force=force,
                                                  workers=workers), disable=verbose)
    elapsed = time.perf_counter() - started
    print_refs(result, f"stad demo --task temporal: the synthetic '{preset}' dataset", root=Workspace(out).root)
    table = Table(title=f"results: {config.evaluate.split} Charades_v1_localize mAP (%)", title_justify="left")
    for column in ("head", "mAP", "wAP", "videos"):
        table.add_column(column, justify="left" if column == "head" else "right")
    for name, ref in result.items():
        if name.startswith("temporal_evaluate:"):
            s = json.loads(local_path(ref.path("summary.json")).read_text())
            table.add_row(s["head"], f"{100 * (s['mAP'] or 0):.1f}", f"{100 * (s['wAP'] or 0):.1f}", str(s["videos"]))
    Console().print(table)
    Console().print(f"done in {elapsed:.1f} s  (workspace {out}; `stad history -w {out}` lists every evaluation)")


def register(app: typer.Typer) -> None:
    """Add ``eval-charades`` to ``app``."""

    @app.command("eval-charades")
    def eval_charades(
        groundtruth: Path = typer.Option(..., "--groundtruth", "-g", help="Charades_v1_test.csv (id, actions, length)."),
        submission: Path = typer.Option(..., "--submission", "-s", help="Lines '<id> <frame> <score per class>'."),
        classes: Path | None = typer.Option(None, "--classes", help="Charades_v1_classes.txt (default: 157 classes)."),
        frames: int = typer.Option(25, "--frames", help="Scored frames per video (the official script: 25)."),
        json_out: Path | None = typer.Option(None, "--json", help="Write mAP, wAP and per-class AP here."),
    ) -> None:
        """Charades_v1_localize: per-frame mAP of a localization submission, as the official script scores it."""
        from stad_core.temporal.annotations import read_charades_classes, read_charades_csv
        from stad_core.temporal.metric import charades_localize
        from stad_core.temporal.submission import read_submission

        class_list = read_charades_classes(classes) if classes else None
        num_classes = len(class_list) if class_list else 157
        videos = read_charades_csv(groundtruth, class_list)
        sub = read_submission(submission, num_classes)
        if sub.shifted_from_zero:
            typer.echo("warning: frames are 0-indexed; adding 1 to every frame number (as the official script does)")
        result = charades_localize(videos, sub.predictions, num_classes, frames)
        missing = len(videos) * frames - sum(1 for v in videos for j in range(1, frames + 1)
                                             if (v.video_id, j) in sub.predictions)
        if missing:
            typer.echo(f"warning: {missing} (video, frame) pairs have no scores (scored -inf)")
        typer.echo(f"Per-Frame mAP: {100 * result.map:.2f}  wAP: {100 * result.wap:.2f}  "
                   f"({result.classes_scored} of {num_classes} classes have positives; {len(videos)} videos)")
        if json_out:
            json_out.write_text(json.dumps({"mAP": result.map, "wAP": result.wap, "ap": [
                None if a != a else float(a) for a in result.ap]}, indent=1))
