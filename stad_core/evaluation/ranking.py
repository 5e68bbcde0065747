"""Each class's ranked detection list, built the official way one class at a time, in threads.

The official evaluator concatenates a class's detections keyframe by keyframe (keyframes in
first-seen order; inside one, by descending score -- file order for PySlowFast -- equal scores in
file order) and ranks that array with numpy's default (unstable) ``argsort``. We build the same
array for each class and call the same sort, so tied scores land where the official evaluator
puts them (on the same numpy build).

Classes are independent, so they are ranked by a small thread pool: numpy releases the GIL in
the sorts and gathers that make up the work, and an 11M-row run keeps both cores busy instead of
one. Each class's temporaries are a few MB; nothing here has the size of the whole file.
"""

from __future__ import annotations

import numpy as np

from stad_core.evaluation.threads import THREADS, parallel_map
from stad_core.evaluation.topk import float_order_key32


class ClassRows:
    """Rows of each class index in file order, from a stable sort by class of ``[N]`` class
    indices (``n_classes`` for rows that take no part), done in ``threads`` parts in parallel.

    Holds one int32/int64 permutation of N rows; :meth:`rows` assembles one class's ``[D_c]``
    int64 row numbers (ascending).
    """

    def __init__(self, cls: np.ndarray, n_classes: int, threads: int | None = None) -> None:
        threads = THREADS if threads is None else threads
        n = len(cls)
        self.n_classes = n_classes
        cuts = np.linspace(0, n, max(threads, 1) + 1).astype(np.int64)
        parts = list(zip(cuts[:-1].tolist(), cuts[1:].tolist()))
        index = np.int32 if n < 1 << 31 else np.int64

        def sort(part: tuple[int, int]) -> tuple[int, np.ndarray, np.ndarray]:
            lo, hi = part
            chunk = cls[lo:hi]
            key = chunk.astype(np.int16) if n_classes < (1 << 15) - 1 else chunk
            order = np.argsort(key, kind="stable").astype(index)  # a radix sort for 16-bit keys
            counts = np.zeros(n_classes + 1, dtype=np.int64)
            for s in range(0, len(key), 1 << 20):  # bincount copies its input to int64: in chunks
                counts += np.bincount(key[s : s + (1 << 20)], minlength=n_classes + 1)
            return lo, order, np.r_[0, np.cumsum(counts)]

        self._parts = list(parallel_map(sort, parts, threads))
        self.counts = sum((b[1:] - b[:-1] for _, _, b in self._parts), np.zeros(n_classes + 1, np.int64))

    def rows(self, c: int) -> np.ndarray:
        """``[D_c]`` int64 rows of class index ``c`` in file order."""
        pieces = [order[b[c] : b[c + 1]].astype(np.int64) + lo for lo, order, b in self._parts]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def visit_order(rows: np.ndarray, score: np.ndarray, image_rank: np.ndarray, *, by_score: bool) -> np.ndarray:
    """One class's detections ``rows`` ``[D_c]`` (file order) in the official list order: by
    keyframe (``image_rank`` ``[N]``), then by descending ``score`` ``[N]`` (when ``by_score``),
    equal scores in file order. Returns ``[D_c]`` rows."""
    order = _visit_positions(score[rows], image_rank[rows], by_score=by_score)
    return rows if order is None else rows[order]


def _visit_positions(s: np.ndarray, rank: np.ndarray, *, by_score: bool) -> np.ndarray | None:
    """Positions ``[D_c]`` that put one class's detections (file order; scores ``s``, keyframe
    ranks ``rank``) in visiting order; None when file order is already it.

    The score enters as its float32 order key packed below the keyframe rank, so one stable sort
    of uint64 -- nearly sorted already when keyframes come in file order -- does it; runs where
    distinct scores share a float32 key (rare) are re-sorted exactly afterwards.
    """
    if len(s) < 2:
        return None
    if not by_score:
        if bool((rank[1:] >= rank[:-1]).all()):
            return None  # keyframes in file order (AVA files): nothing to do
        return np.argsort(rank, kind="stable")
    if not (np.isfinite(s.min()) and np.isfinite(s.max())) or int(rank.max()) >= 1 << 32 or int(rank.min()) < 0:
        order = np.argsort(-s, kind="stable")  # NaN last, like the official descending sort
        return order[np.argsort(rank[order], kind="stable")]
    packed = rank.astype(np.uint64)
    packed <<= np.uint64(32)
    packed |= ~float_order_key32(s)  # descending score
    order = np.argsort(packed, kind="stable")
    key = packed[order]
    same = key[1:] == key[:-1]  # [D_c - 1] neighbours with equal keyframe and float32 key
    if same.any():
        ranked = s[order]
        mixed = same & (ranked[1:] != ranked[:-1])
        if mixed.any():
            run = np.cumsum(np.r_[True, ~same])  # [D_c] run of equal packed keys
            pos = np.flatnonzero(np.isin(run, run[1:][mixed]))  # those runs' positions (contiguous)
            sub = order[pos]
            order[pos] = sub[np.lexsort((sub, -s[sub], run[pos]))]
    return order


def ranked_true_positives(
    rows: np.ndarray, score: np.ndarray, image_rank: np.ndarray, tp: np.ndarray, *, by_score: bool
) -> np.ndarray:
    """``[D_c]`` bool true-positive flags of one class's detections ``rows`` in rank order: the
    official ranking, numpy's default ``argsort`` of the list's scores, reversed. That sort is not
    stable, so equal scores land where it puts them -- we call the same sort on the same array
    to land them in the same place."""
    s, flags = score[rows], tp[rows]  # one pass over the big arrays; the rest works on these
    order = _visit_positions(s, image_rank[rows], by_score=by_score)
    if order is not None:
        s, flags = s[order], flags[order]
    return flags[np.argsort(s)[::-1]]
