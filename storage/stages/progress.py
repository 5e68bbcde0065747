"""Stage progress: stages report ``(stage, done, total)``; whoever listens (the CLI's progress bars)
registers a listener. Harmless when nobody listens, and free of any orchestrator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from stad_core.progress import ProgressFn

ProgressListener = Callable[[str, int, int], None]
_listeners: list[ProgressListener] = []


@contextmanager
def progress_listener(fn: ProgressListener) -> Iterator[None]:
    """Receive every stage's progress reports in this process while the block runs."""
    _listeners.append(fn)
    try:
        yield
    finally:
        _listeners.remove(fn)


def report_progress(stage: str, done: int, total: int) -> None:
    for fn in list(_listeners):
        fn(stage, done, total)


def stage_progress(stage: str) -> ProgressFn:
    """An ``on_progress(done, total)`` for a stad_core function, forwarded to the listeners."""

    def on_progress(done: int, total: int) -> None:
        report_progress(stage, done, total)

    return on_progress
