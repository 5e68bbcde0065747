"""A small LRU cache of decoded chunks, bounded in bytes.

Neighbouring keyframes' windows overlap by ~59 of 60 seconds, so a batch of keyframes from one
video keeps hitting the same one or two feature chunks; caching the decoded chunk avoids
decompressing it again (zarr itself caches nothing).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np


class ChunkCache:
    """LRU map ``key -> ndarray`` holding at most ``max_bytes`` of arrays (0 disables caching)."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def get(self, key: Hashable, load: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for ``key``, calling ``load()`` on a miss."""
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return item
        self.misses += 1
        return self.put(key, load())

    def peek(self, key: Hashable) -> np.ndarray | None:
        """The cached array (marked recently used), or None; counts a hit or a miss."""
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: Hashable, item: np.ndarray) -> np.ndarray:
        """Cache ``item`` (if it fits), evicting the least recently used; returns ``item``."""
        if key in self._items:
            self.nbytes -= self._items.pop(key).nbytes
        if item.nbytes <= self.max_bytes:
            self._items[key] = item
            self.nbytes += item.nbytes
            while self.nbytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.nbytes -= old.nbytes
        return item

    def drop(self, predicate: Callable[[Hashable], bool]) -> None:
        """Forget every entry whose key matches (e.g. one video's chunks after a rewrite)."""
        for key in [k for k in self._items if predicate(k)]:
            self.nbytes -= self._items.pop(key).nbytes

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0
