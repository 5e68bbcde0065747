"""``stad infer``: run a model bundle on new videos -> AVA CSV, tracks JSON, annotated MP4."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("infer")
    def infer(
        videos: list[Path] = typer.Argument(..., help="Video files and/or folders of videos."),
        model: Path = typer.Option(..., "--model", "-m", help="A bundle folder written by `stad export`."),
        out: Path = typer.Option(Path("stad-infer"), "--out", "-o", help="Folder for the outputs."),
        stride: int = typer.Option(1, "--stride", help="Seconds between keyframes."),
        margin: int = typer.Option(1, "--margin", help="No keyframes in the first/last this many seconds."),
        threshold: float = typer.Option(0.3, "--threshold", help="Show actions scoring >= this (MP4, JSON)."),
        top_k: int = typer.Option(3, "--top-k", help="At most this many actions per person (MP4, JSON)."),
        min_score: float = typer.Option(0.0, "--min-score", help="CSV: keep (person, class) scores >= this."),
        keep_bank: bool = typer.Option(False, "--keep-bank", help="Keep each video's feature bank in OUT/banks/."),
        no_video: bool = typer.Option(False, "--no-video", help="Skip the annotated MP4."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
        force: bool = typer.Option(False, "--force", help="Redo videos a previous run finished."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Detect, track and score the people of each video with a trained model bundle.

        Writes OUT/VIDEO.csv (AVA format, track id in the person column), OUT/VIDEO.tracks.json and
        OUT/VIDEO.mp4. A re-run skips finished videos; an unreadable video is reported and the rest go on.
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from stad_core.errors import StadError
        from storage.stages.infer import InferConfig, InferFailure, infer_folder

        config = InferConfig(stride=stride, margin=margin, threshold=threshold, top_k=top_k, min_score=min_score,
                             keep_bank=keep_bank, video=not no_video)
        console = Console()
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=quiet) as progress:
            task = progress.add_task("infer", total=None)

            def on_progress(step: str, done: int, total: int) -> None:
                progress.update(task, description=step, completed=done, total=total)

            def on_video(path: Path, result: object) -> None:
                if isinstance(result, InferFailure):
                    said = result.reason if str(path) in result.reason else f"{path}: {result.reason}"
                    console.print(f"[red]failed[/] {said}", highlight=False, soft_wrap=True)
                elif getattr(result, "skipped", False):
                    console.print(f"skipped {path} (finished by a previous run)", highlight=False, soft_wrap=True)
                else:
                    console.print(f"{path}: {result.keyframes} keyframes, {result.actors} people, "  # type: ignore[attr-defined]
                                  f"{result.tracks_count} tracks", highlight=False, soft_wrap=True)  # type: ignore[attr-defined]

            result = infer_folder(model, videos, out, config, device=device, force=force, on_video=on_video,
                                  on_progress=on_progress)
        for done in result.done:
            console.print(f"  {done.csv}\n  {done.tracks}" + (f"\n  {done.mp4}" if done.mp4 else ""),
                          highlight=False, soft_wrap=True)
        if result.failed:
            raise StadError(f"{len(result.failed)} of {len(result.failed) + len(result.done)} videos failed: "
                            + "; ".join(f.reason if str(f.path) in f.reason else f"{f.path}: {f.reason}" for f in result.failed))


def demo_infer(out: Path, *, quiet: bool = False) -> Path:
    """The last step of `stad demo`: export the newest head as a bundle (with a small person detector
    fine-tuned on the training keyframes, since the pipeline used ground-truth boxes), render one new
    synthetic video and run `stad infer` on it. Returns the annotated MP4."""
    import time

    from rich.console import Console

    from flows.cli.progress import progress_bar
    from stad_core.detection import DetectConfig
    from storage.bundle import export_bundle
    from storage.stages.infer import InferConfig, Models, demo_detector, demo_video, infer_video

    console = Console()
    started = time.perf_counter()
    folder = out / "infer-demo"
    weights = folder / "detector.pt"
    if not weights.is_file():
        with progress_bar("infer: person detector", disable=quiet) as cb:
            demo_detector(out, weights, on_progress=cb)
    video = folder / "videos" / "heldout.mp4"
    if not video.is_file():
        demo_video(out, video)
    bundle = export_bundle(out, folder / "bundle", detector=DetectConfig(
        detector="tiny_fasterrcnn", weights=str(weights), num_classes=2, score_threshold=0.6))
    with progress_bar("infer: held-out video", disable=quiet) as cb:
        result = infer_video(Models(bundle), video, folder / "out", InferConfig(),
                             on_progress=lambda step, done, total: cb(done, total))
    console.print(f"stad infer on a held-out synthetic video ({bundle.head_name} head, bundle {bundle.root}): "
                  f"{result.actors} people over {result.keyframes} keyframes in {time.perf_counter() - started:.1f} s",
                  highlight=False, soft_wrap=True)
    console.print(f"annotated video: {result.mp4}\nAVA CSV: {result.csv}\ntracks: {result.tracks}",
                  highlight=False, soft_wrap=True)
    return result.mp4  # type: ignore[return-value]
