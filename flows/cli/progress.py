"""Rich progress bars for long CLI work, driven by the ``on_progress(done, total)`` callbacks that
long-running ``stad_core`` functions accept."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from stad_core.progress import ProgressFn


@contextmanager
def progress_bar(description: str, *, disable: bool = False) -> Iterator[ProgressFn]:
    """Yield an ``on_progress(done, total)`` callback that drives one rich progress bar."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False, disable=disable) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
