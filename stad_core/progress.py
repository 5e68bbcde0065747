"""Progress reporting convention for long-running core functions.

Long work in ``stad_core``/``storage`` accepts ``on_progress: ProgressFn | None``, called as
``on_progress(done, total)``; the CLI turns it into a rich bar, flows into Prefect logs.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int], None]


def report(on_progress: ProgressFn | None, done: int, total: int) -> None:
    """Call ``on_progress`` if given (keeps call sites one line)."""
    if on_progress is not None:
        on_progress(done, total)
