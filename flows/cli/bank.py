"""``stad bank ...``: browse, check and tidy feature banks (zarr; any fsspec URI)."""

from __future__ import annotations

from typing import Annotated

import typer

bank_app = typer.Typer(
    name="bank", help="Browse, verify and tidy feature banks.", no_args_is_help=True, add_completion=False
)

Uri = Annotated[str, typer.Argument(help="Bank location: a path, file://, memory://, s3://...")]
Video = Annotated[str, typer.Argument(help="Video id")]


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _console():  # noqa: ANN202 - rich imported lazily
    from rich.console import Console

    return Console()


def _open(uri: str, mode: str = "r"):  # noqa: ANN202
    from storage.banks import open_bank

    return open_bank(uri, mode)  # type: ignore[arg-type]


@bank_app.command("ls")
def ls(
    root: Annotated[str, typer.Argument(help="Directory to search for banks")] = ".",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list (full paths, sizes in bytes) for scripts")] = False,
) -> None:
    """List the banks under a directory: kind, dim, dtype, videos, rows, sizes, compression ratio."""
    import json
    from pathlib import Path

    from rich.table import Table

    from storage.browse import bank_summary, find_banks

    found = []
    for path in find_banks(root):
        bank = _open(str(path))
        summary = bank_summary(bank)
        on_disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        s = bank.spec
        found.append({
            "bank": str(path.relative_to(root)) if path != Path(root) else ".", "path": str(path.resolve()),
            "kind": s.kind, "dim": s.feature_dim, "dtype": s.dtype, "backbone": s.backbone,
            "videos": len(summary.videos), "incomplete": len(summary.incomplete), "rows": summary.rows,
            "raw_bytes": summary.raw_bytes, "stored_bytes": summary.stored_bytes, "on_disk_bytes": on_disk,
            "ratio": round(summary.ratio, 3), "codec": bank.codec,
        })
    if as_json:
        typer.echo(json.dumps(found, indent=1))
        return
    if not found:
        _console().print(f"no banks under {root}")
        return
    table = Table("bank", "kind", "dim", "dtype", "videos", "rows", "uncompressed", "on disk", "ratio", "codec",
                  "backbone", title=f"banks under {root}")
    for b in found:
        videos = str(b["videos"]) + (f" (+{b['incomplete']} incomplete)" if b["incomplete"] else "")
        table.add_row(b["bank"], b["kind"], str(b["dim"]), b["dtype"], videos, str(b["rows"]), _size(b["raw_bytes"]),
                      _size(b["on_disk_bytes"]), f"{b['ratio']:.2f}x", b["codec"], b["backbone"])
    # As wide as the table needs: a path is never cut or folded, whatever the terminal width.
    _wide_console().print(table)


def _wide_console():  # noqa: ANN202
    from rich.console import Console

    return Console(width=100_000, soft_wrap=True)


@bank_app.command()
def info(uri: Uri) -> None:
    """The bank's spec, codec, chunking, sizes (raw, stored, ratio) and completeness."""
    from rich.table import Table

    from flows.cli.progress import progress_bar
    from storage.browse import bank_summary

    bank = _open(uri)
    table = Table("field", "value", title=f"bank {uri}")
    for key, value in bank.spec.model_dump().items():
        table.add_row(key, str(value))
    with progress_bar("Reading", disable=False) as cb:
        summary = bank_summary(bank, on_progress=cb)
    table.add_row("codec", bank.codec)
    table.add_row("checksum", "crc32c per chunk (verify names videos written without)" if bank.checksum else "none")
    table.add_row("chunk target", _size(bank.chunk_bytes))
    table.add_row("videos (complete)", str(len(summary.videos)))
    table.add_row("videos (incomplete)", ", ".join(summary.incomplete) or "0")
    table.add_row("stale versions", str(len(summary.stale)) + (" (run `stad bank gc`)" if summary.stale else ""))
    table.add_row("rows", str(summary.rows))
    table.add_row("uncompressed", _size(summary.raw_bytes))
    table.add_row("stored", _size(summary.stored_bytes))
    table.add_row("ratio", f"{summary.ratio:.2f}x")
    _console().print(table)


@bank_app.command()
def videos(uri: Uri) -> None:
    """One line per video: version, rows, seconds, busiest second, stored size and ratio."""
    from rich.table import Table

    from storage.browse import bank_summary

    bank = _open(uri)
    summary = bank_summary(bank)
    table = Table("video", "version", "rows", "seconds", "max/s", "stored", "ratio", "source", title=uri)
    for v in summary.videos:
        span = f"{v.first_second}..{v.first_second + v.num_seconds - 1}" if v.num_seconds else "-"
        ratio = v.raw_bytes / v.stored_bytes if v.stored_bytes else 1.0
        table.add_row(v.video_id, v.version, str(v.rows), span, str(v.max_per_second), _size(v.stored_bytes),
                      f"{ratio:.2f}x", v.source)
    for vid in summary.incomplete:
        table.add_row(vid, "-", "-", "-", "-", "-", "-", "[yellow]incomplete[/]")
    _console().print(table)


_BARS = " ▁▂▃▄▅▆▇█"


@bank_app.command()
def show(
    uri: Uri,
    video: Video,
    row: Annotated[int | None, typer.Option(help="Also show this row's box, score and feature stats")] = None,
    width: Annotated[int, typer.Option(help="Seconds per timeline line")] = 60,
) -> None:
    """A video's timeline (rows per second) and, with --row, one row's box/score/feature stats."""
    import numpy as np
    from rich.table import Table

    from storage.browse import row_stats, timeline

    bank = _open(uri)
    info_ = bank.video_info(video)
    console = _console()
    console.print(f"[bold]{video}[/] {info_.version}: {info_.rows} rows, source {info_.source}, meta {info_.meta}")
    counts = timeline(bank, video)
    top = max(int(counts.max(initial=0)), 1)
    for start in range(0, len(counts), width):
        part = counts[start : start + width]
        bars = "".join(_BARS[min(8, int(np.ceil(8 * c / top)))] for c in part)
        console.print(f"{info_.first_second + start:>6}s |{bars}| {int(part.sum())}")
    console.print(f"(one character per second; full bar = {top} rows)")
    if row is not None:
        s = row_stats(bank, video, row)
        table = Table("field", "value", title=f"row {row}")
        for key, value in vars(s).items():
            if isinstance(value, tuple):
                value = "(" + ", ".join(f"{x:.3f}" for x in value) + ")"
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
        console.print(table)


@bank_app.command()
def stats(uri: Uri) -> None:
    """Bank-wide statistics: rows per video and per second, feature statistics, sizes per array."""
    import numpy as np
    from rich.table import Table

    from flows.cli.progress import progress_bar
    from storage.browse import bank_summary, feature_stats

    bank = _open(uri)
    summary = bank_summary(bank)
    console = _console()
    if not summary.videos:
        console.print("no complete videos")
        return
    rows = np.array([v.rows for v in summary.videos])
    per_sec = rows / np.maximum([v.num_seconds for v in summary.videos], 1)
    table = Table("statistic", "value", title=uri)
    table.add_row("videos", str(len(rows)))
    table.add_row("rows (total / median / max per video)", f"{rows.sum()} / {np.median(rows):.0f} / {rows.max()}")
    table.add_row("rows per second (mean over videos)", f"{per_sec.mean():.2f}")
    table.add_row("busiest second", str(max(v.max_per_second for v in summary.videos)))
    with progress_bar("Reading features") as cb:
        f = feature_stats(bank, on_progress=cb)
    table.add_row("feature mean / std", f"{f.mean:.4g} / {f.std:.4g}")
    table.add_row("feature min / max", f"{f.min:.4g} / {f.max:.4g}")
    table.add_row("row L2 norm (mean / min / max)", f"{f.norm_mean:.4g} / {f.norm_min:.4g} / {f.norm_max:.4g}")
    table.add_row("zero values", f"{100 * f.zero_fraction:.1f} %")
    table.add_row("dead channels (zero in every row)", f"{f.dead_channels} of {bank.spec.feature_dim}")
    table.add_row("channel std (min / median / max)",
                  f"{f.channel_std.min():.4g} / {np.median(f.channel_std):.4g} / {f.channel_std.max():.4g}")
    table.add_row("NaN / inf values", f"[red]{f.nonfinite}[/]" if f.nonfinite else "0")
    console.print(table)
    arrays = Table("array", "uncompressed", "stored", "ratio", "chunks", "codec")
    totals: dict[str, list[int]] = {}
    meta: dict[str, tuple[str, str]] = {}
    for v in summary.videos:
        for name, arr in bank.arrays(v.video_id):
            t = totals.setdefault(name, [0, 0])
            t[0] += arr.nbytes
            t[1] += arr.nbytes_stored()
            meta[name] = (str(arr.chunks), " + ".join(type(c).__name__ for c in arr.compressors) or "none")
    for name, (raw, stored) in sorted(totals.items()):
        arrays.add_row(name, _size(raw), _size(stored), f"{raw / max(stored, 1):.2f}x", *meta[name])
    console.print(arrays)


@bank_app.command()
def nn(
    uri: Uri,
    video: Video,
    row: Annotated[int, typer.Argument(help="Row number in the video (time order)")],
    k: Annotated[int, typer.Option(help="How many neighbours")] = 5,
    same_video: Annotated[bool, typer.Option(help="Search only the query's video")] = False,
    other_videos: Annotated[bool, typer.Option("--other-videos", help="Search only the other videos (skip the "
                                                                      "query's own, where its neighbours are itself a second apart)")] = False,
) -> None:
    """Nearest neighbours of a row by cosine similarity (scans the bank chunk by chunk)."""
    from rich.table import Table

    from flows.cli.progress import progress_bar
    from storage.browse import nearest_neighbours

    from stad_core.errors import StadError

    if same_video and other_videos:
        raise StadError("--same-video and --other-videos exclude each other")
    bank = _open(uri)
    videos = [video] if same_video else [v for v in bank.videos() if v != video] if other_videos else None
    with progress_bar("Searching") as cb:
        found = nearest_neighbours(bank, video, row, k=k, videos=videos, on_progress=cb)
    table = Table("video", "row", "t", "person", "cosine", title=f"neighbours of {video} row {row}")
    for n in found:
        table.add_row(n.video_id, str(n.row), f"{n.timestamp:.2f}", str(n.person_id), f"{n.similarity:.4f}")
    _console().print(table)


@bank_app.command()
def verify(
    uri: Uri,
    quick: Annotated[bool, typer.Option("--quick", help="Metadata, chunk presence and the small arrays only; "
                                                        "no feature decode, so no checksum checks")] = False,
) -> None:
    """Decode every chunk of every complete video (checksums checked) and check it against the spec;
    list each damaged chunk (video, array, chunk) and exit 1 if anything is wrong."""
    from rich.markup import escape

    from flows.cli.progress import progress_bar
    from stad_core.errors import StadError
    from storage.reading import writer_stage
    from storage.verify import check_bank

    bank = _open(uri)
    with progress_bar("Verifying") as cb:
        result = check_bank(bank, quick=quick, on_progress=cb)
    console = _console()
    for p in result.problems:
        console.print(f"[red]{escape(f'{uri}: {p}')}[/]", soft_wrap=True, highlight=False)
    if result.no_checksums:
        shown = ", ".join(result.no_checksums[:5]) + (", ..." if len(result.no_checksums) > 5 else "")
        console.print(f"[yellow]no checksums[/]: {len(result.no_checksums)} of {result.videos} videos ({shown}) "
                      "(written before checksums): damage that still decodes goes unnoticed there "
                      "(re-extracting a video adds them)", soft_wrap=True)
    stale = bank.stale_versions()
    if stale:
        console.print(f"{len(stale)} stale version(s) left by interrupted writers (`stad bank gc {uri}` removes them)")
    if result.problems:
        damaged = result.damaged_videos
        stage = writer_stage(bank.spec.kind)
        raise StadError(
            f"{len(result.problems)} problem(s) in {len(damaged)} video(s) of {uri}; re-extract them: "
            f"`stad bank repair {uri} {' '.join(damaged)}`, then `stad run {stage}` redoes only those videos"
        )
    what = "metadata checked (--quick)" if quick else f"{result.chunks} chunks decoded"
    console.print(f"[green]ok[/]: {result.videos} complete videos checked, {what}")


@bank_app.command()
def repair(
    uri: Uri,
    videos: Annotated[list[str], typer.Argument(help="Video ids to delete (e.g. the ones `stad bank verify` names)")],
) -> None:
    """Delete damaged videos so the next run of the stage that wrote the bank redoes exactly them.

    Also un-marks the bank's stage output as complete (its `_stage.json`), so a plain
    `stad run extract` (or `acfb`) re-runs and skips every video still complete.
    """
    from storage.reading import writer_stage
    from storage.verify import repair_videos

    bank = _open(uri, "a")
    done = repair_videos(bank, videos)
    console = _console()
    console.print(f"deleted {len(done.deleted)} video(s) from {uri}: {', '.join(done.deleted)}", soft_wrap=True)
    stage = writer_stage(bank.spec.kind)
    if done.stage_record:
        console.print(f"removed {done.stage_record}: the next `stad run {stage}` redoes only these videos",
                      soft_wrap=True)
    else:
        console.print(f"re-write these videos (e.g. `stad run {stage}` on the workspace holding this bank)")


@bank_app.command()
def gc(uri: Uri) -> None:
    """Delete versions left by interrupted writers (run when no writer is active)."""
    bank = _open(uri, "a")
    removed = bank.gc()
    _console().print(f"removed {len(removed)} stale version(s)")


def register(app: typer.Typer) -> None:
    """Add the ``bank`` command group to ``app``."""
    app.add_typer(bank_app, name="bank")

