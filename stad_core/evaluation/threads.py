"""A small thread pool for the evaluation's independent pieces of numpy work.

numpy releases the GIL in sorts, gathers and ufunc loops on large arrays, so per-class and
per-chunk work that is independent runs on both cores of a 2-core machine instead of one.
Results come back in order, so the outcome never depends on the threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

#: Threads used for per-class and per-chunk work.
THREADS = min(2, os.cpu_count() or 1)

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], items: Iterable[T], threads: int | None = None) -> Iterator[R]:
    """``map(fn, items)`` on ``threads`` threads (default :data:`THREADS`); results in the order
    of ``items``. Exceptions propagate as from ``map``."""
    threads = THREADS if threads is None else threads
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        return map(fn, items)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return iter(list(pool.map(fn, items)))


#: Rows per chunk of :func:`for_chunks`.
CHUNK = 1 << 20


def for_chunks(n: int, fn: Callable[[int, int], None], chunk: int = CHUNK) -> None:
    """Call ``fn(lo, hi)`` for consecutive chunks of ``range(n)`` on :data:`THREADS` threads
    (``fn`` writes only its own rows of its outputs)."""
    for _ in parallel_map(lambda lo: fn(lo, min(n, lo + chunk)), range(0, n, chunk)):
        pass
