"""`stad probe` (inspect video files) and `stad ingest` (build the dataset manifest)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``probe`` and ``ingest`` to ``app``."""
    app.command("probe")(probe)
    app.command("ingest")(ingest)


def probe(
    paths: list[Path] = typer.Argument(..., help="Video files to inspect.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file instead of a table."),
    times: bool = typer.Option(False, "--times", help="Also print every frame's time (seconds, first file only)."),
) -> None:
    """Show codec, size, fps, frame count, duration, start time and variable frame rate of videos.

    Counts come from the packets of the video stream (exact, no decoding). Unreadable files are reported one line each on stderr and make the command exit with status 1.
    """
    import dataclasses
    import json

    from rich.console import Console
    from rich.table import Table

    from flows.cli.progress import progress_bar
    from stad_core.errors import StadError
    from stad_core.video import frame_times
    from stad_core.video import probe as probe_video

    if len(paths) == 1:  # a single bad file: main() prints the one-line reason and exits 1
        infos = [probe_video(paths[0])]
        failures: list[str] = []
    else:
        infos, failures = [], []
        with progress_bar("Probing", disable=as_json) as on_progress:
            for done, path in enumerate(paths, start=1):
                try:
                    infos.append(probe_video(path))
                except StadError as exc:
                    failures.append(str(exc))
                on_progress(done, len(paths))

    if as_json:
        for info in infos:
            typer.echo(json.dumps(dataclasses.asdict(info)))
    elif infos:
        table = Table("codec", "size", "fps", "frames", "duration s", "start s", "VFR")
        table.add_column("file", overflow="fold")
        for info in infos:
            table.add_row(
                info.codec, f"{info.width}x{info.height}", f"{info.fps:.3f}", str(info.num_frames),
                f"{info.duration:.3f}", f"{info.start_time:.3f}", "yes" if info.variable_frame_rate else "no",
                info.path,
            )
        Console().print(table)
    if times and infos:
        typer.echo(" ".join(f"{t:.6f}" for t in frame_times(infos[0].path)))
    if failures:
        err = Console(stderr=True)
        for line in failures:
            err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def ingest(
    overrides: list[str] = typer.Argument(
        None, help="Settings as key=value, applied on top of the config file (e.g. videos_dir=data/v).",
        show_default=False,
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="IngestConfig YAML (e.g. configs/ingest.yaml)."),
    show_rejects: int = typer.Option(20, "--show-rejects", help="List up to this many reject rows.", min=0),
    fail_on_rejects: bool = typer.Option(False, "--fail-on-rejects", help="Exit with status 2 if anything was rejected."),
) -> None:
    """Probe a videos folder against AVA annotation files; write manifest.parquet and rejects.parquet.

    Bad videos become reject rows and the run goes on; bad annotation files or settings stop it with a one-line reason. Settings: see IngestConfig in stad_core/ingest.py and configs/ingest.yaml.
    """
    from rich.console import Console
    from rich.table import Table

    from flows.cli.progress import progress_bar
    from stad_core.config import load_config
    from stad_core.ingest import IngestConfig, build_manifest, read_rejects

    cfg = load_config(IngestConfig, config, overrides or [])
    with progress_bar("Probing videos") as on_progress:
        result = build_manifest(cfg, on_progress=on_progress)

    console = Console()
    splits = ", ".join(f"{k} {v}" for k, v in result.videos_per_split.items()) or "none"
    console.print(f"videos: {result.num_videos} ({splits}); keyframes: {result.num_keyframes}")
    console.print(f"manifest: {result.manifest_path} (content {result.content_hash}, config {result.config_hash})")
    if result.warnings:
        console.print(f"[yellow]{len(result.warnings)} annotation warnings[/], first: {result.warnings[0]}", highlight=False)
    if result.num_rejects:
        kinds = ", ".join(f"{k} {v}" for k, v in result.rejects_per_kind.items())
        console.print(f"[yellow]rejects: {result.num_rejects}[/] ({kinds}) -> {result.rejects_path}")
        if show_rejects:
            rows = read_rejects(result.rejects_path).slice(0, show_rejects).to_pylist()
            table = Table("video", "kind", "keyframes", "reason")
            for row in rows:
                table.add_row(row["video_id"], row["kind"], str(len(row["timestamps"]) or ""), row["reason"])
            console.print(table)
        if fail_on_rejects:
            raise typer.Exit(2)
