"""The official per-keyframe cap on detections, reproduced with whole-array operations.

The official reader pushes every detection row, in file order, into a min-heap of capacity K
per keyframe: a row enters while the heap has room; once it is full a row enters only if its
score is *strictly* greater than the heap's smallest score, and then the smallest
``(score, action_id, y1, x1, y2, x2)`` tuple leaves. Which rows survive follows from two facts:

* The heap always holds the K largest scores seen so far (as a multiset), so every row with a
  score above ``s*`` -- the K-th largest score of the keyframe -- survives, and the survivors
  include exactly ``m = K - #(score > s*)`` rows with score ``s*``.
* Let ``T0`` be the first row (in file order) at which K rows with score ``>= s*`` have been
  read. Before and at ``T0`` every ``s*`` row entered and none left (the heap minimum was below
  ``s*`` or the heap had room); after ``T0`` no ``s*`` row enters, and each later row scoring
  above ``s*`` evicts the smallest ``s*`` tuple. So the kept ``s*`` rows are the ``m`` largest
  tuples among the ``s*`` rows read up to ``T0``.

:func:`top_k_per_keyframe` computes exactly that. To stay fast on ~11M rows it never argsorts
all rows by score: a float32 threshold per keyframe -- ``np.partition`` of each keyframe's rounded
scores when keyframes come in runs (AVA files), else one value sort of packed ``(keyframe,
float32 score)`` keys -- leaves ~K candidates per keyframe; the exact float64 work (and the tie
rule) runs on those candidates only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stad_core.evaluation.threads import for_chunks, parallel_map


def float_order_key32(values: np.ndarray, *, signed: bool | None = None) -> np.ndarray:
    """``[N]`` uint32 keys whose unsigned order is the order of ``values`` rounded to float32.

    Monotone non-decreasing in ``values`` (float64 -> float32 rounding preserves order), so
    ``a <= b`` implies ``key(a) <= key(b)``; equal keys only mean "equal after rounding".
    ``signed``: whether any value has its sign bit set (None: look). Keys of chunks of one array
    are comparable only when every chunk gets the whole array's answer.
    """
    if signed is None:
        signed = bool(np.signbit(values).any())
    if not signed:
        # Non-negative floats (the usual scores) already order like their bit patterns.
        return values.astype(np.float32).view(np.uint32)
    # + 0.0 turns -0.0 into +0.0: they compare equal, so they must get the same key.
    bits = (values + 0.0).astype(np.float32).view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    # Positive floats: set the sign bit so they sort above negatives; negative floats: flip all
    # bits so larger magnitudes sort lower. -0.0 and +0.0 become adjacent keys, which is fine
    # for a threshold that is refined exactly afterwards.
    return np.where(negative, ~bits, bits | np.uint32(0x80000000))


def top_k_per_keyframe(
    keyframe: np.ndarray,
    score: np.ndarray,
    tiebreak: np.ndarray | Callable[[np.ndarray], np.ndarray],
    k: int,
    *,
    runs: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Rows the official top-``k`` heap keeps, rows given in file order.

    Args:
        keyframe: ``[N]`` int keyframe number of each row (any non-negative ints < 2**31).
        score: ``[N]`` float64 scores (finite).
        tiebreak: ``[N, 5]`` float64 ``(action_id, y1, x1, y2, x2)`` -- the rest of the heap tuple,
            compared lexicographically when scores are equal -- or a function returning those
            rows for an index array (only the few rows tied at a boundary are ever asked for).
        k: heap capacity per keyframe (>= 1).
        runs: ``([U] keyframe, [U] length)`` of the runs of equal ``keyframe`` that it repeats
            (optional): the row counts per keyframe and whether keyframes come in order are
            then read off the runs instead of a pass over the N rows.

    Returns:
        ``[N]`` bool mask of the surviving rows.
    """
    n = len(score)
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    kf = np.asarray(keyframe)
    if runs is not None:
        run_kf, run_length = runs
        counts = np.bincount(run_kf, weights=run_length).astype(np.int64)
        in_order = len(run_kf) < 2 or bool((run_kf[1:] >= run_kf[:-1]).all())
    else:
        counts = np.bincount(kf)
        in_order = n < 2 or bool((kf[1:] >= kf[:-1]).all())
    if counts.max() <= k:
        return keep

    # 1) float32 threshold per keyframe: the k-th largest rounded score. The keys are made a
    # block or chunk at a time (one ``signed`` for all, so they compare): no [N] key array.
    signed = bool(np.signbit(score).any())
    over = np.flatnonzero(counts > k)
    threshold = np.zeros(len(counts), dtype=np.uint32)  # 0 keeps every row of small keyframes
    if in_order:
        threshold[over] = _kth_largest_in_runs(score, np.cumsum(counts) - counts, counts, over, k, signed=signed)
    else:
        packed = kf.astype(np.uint64)
        packed <<= np.uint64(32)
        packed |= float_order_key32(score, signed=signed)
        packed.sort()  # a value sort of uint64 (SIMD in numpy), far cheaper than an argsort
        threshold[over] = (packed[np.cumsum(counts)[over] - k] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        del packed
    candidate = np.empty(n, dtype=bool)

    def above(lo: int, hi: int) -> None:
        candidate[lo:hi] = float_order_key32(score[lo:hi], signed=signed) >= threshold[kf[lo:hi]]

    for_chunks(n, above)
    keep = candidate  # exact for keyframes whose candidates number exactly k (the common case)

    # 2) keyframes with more than k candidates: float32 collisions or true ties at the boundary.
    cand_rows = np.flatnonzero(candidate)
    cand_counts = np.bincount(kf[cand_rows], minlength=len(counts))
    crowded = cand_counts > k
    if not crowded.any():
        return keep
    rows = cand_rows[crowded[kf[cand_rows]]]  # ascending = file order
    keep[rows] = False
    ties = tiebreak(rows) if callable(tiebreak) else tiebreak[rows]
    keep[rows[_resolve_crowded(kf[rows], score[rows], np.asarray(ties, dtype=np.float64), k)]] = True
    return keep


def _kth_largest_in_runs(
    score: np.ndarray, start: np.ndarray, count: np.ndarray, groups: np.ndarray, k: int, *, signed: bool
) -> np.ndarray:
    """``[G]`` uint32: the k-th largest float32 order key (:func:`float_order_key32` with
    ``signed``) of ``score[start[g] : start[g] + count[g]]`` for each of ``groups`` (every
    ``count[g] >= k``): rows of a keyframe are contiguous -- AVA files list a keyframe's rows
    together -- so each keyframe is one row of a zero-padded matrix and ``np.partition`` (linear
    time) replaces a sort of all N keys.

    ``score``: ``[N]`` float; ``start``/``count``: ``[K]`` int; ``groups``: ``[G]`` int into those.
    Zero padding never exceeds a real key, so it does not change the k-th largest.
    """
    out = np.zeros(len(groups), dtype=np.uint32)
    if len(groups) == 0:
        return out
    # Buckets of keyframes whose row count is in (2^(j-1), 2^j]: padding wastes < 2x.
    width_class = np.ceil(np.log2(count[groups])).astype(np.int64)
    order = np.argsort(width_class, kind="stable")
    edges = np.flatnonzero(np.r_[True, width_class[order][1:] != width_class[order][:-1], True])
    blocks: list[tuple[np.ndarray, int]] = []  # (members, padded width) of each block of <= 1M keys
    for lo, hi in zip(edges[:-1], edges[1:]):
        members_all = order[lo:hi]
        width = int(count[groups[members_all]].max())
        step = max(1, (1 << 20) // width)
        blocks += [(members_all[s : s + step], width) for s in range(0, len(members_all), step)]

    def kth(block: tuple[np.ndarray, int]) -> None:  # blocks are independent: two threads
        members, width = block
        offsets = np.arange(width)
        g = groups[members]
        valid = offsets[None, :] < count[g][:, None]
        idx = np.where(valid, start[g][:, None] + offsets[None, :], 0)
        values = float_order_key32(score[idx], signed=signed)
        values[~valid] = 0
        out[members] = np.partition(values, width - k, axis=1)[:, width - k]

    for _ in parallel_map(kth, blocks):
        pass
    return out


def _resolve_crowded(kf: np.ndarray, score: np.ndarray, tiebreak: np.ndarray, k: int) -> np.ndarray:
    """Exact heap outcome on candidate rows (file order) that contain every row scoring >= s*.

    Returns indices (into these arrays) of the kept rows.
    """
    n = len(kf)
    # s*: the k-th largest score of each keyframe.
    by_score = np.lexsort((-score, kf))
    kf_sorted = kf[by_score]
    starts = np.flatnonzero(np.r_[True, kf_sorted[1:] != kf_sorted[:-1]])
    group_kf = kf_sorted[starts]
    s_star_of_group = score[by_score[starts + k - 1]]
    s_star = np.empty(int(kf.max()) + 1, dtype=np.float64)
    s_star[group_kf] = s_star_of_group
    row_s_star = s_star[kf]

    above = score > row_s_star
    at = score == row_s_star
    # T0: position (file order) of the k-th row with score >= s* in its keyframe.
    ge = above | at
    ge_rows = np.flatnonzero(ge)
    order = np.argsort(kf[ge_rows], kind="stable")  # group by keyframe, file order inside
    ge_sorted = ge_rows[order]
    ge_kf = kf[ge_sorted]
    ge_starts = np.flatnonzero(np.r_[True, ge_kf[1:] != ge_kf[:-1]])
    t0 = np.empty(len(s_star), dtype=np.int64)
    t0[ge_kf[ge_starts]] = ge_sorted[ge_starts + k - 1]
    eligible = at & (np.arange(n) <= t0[kf])

    # m per keyframe: k minus the rows strictly above s*.
    m = k - np.bincount(kf[above], minlength=len(s_star))
    elig = np.flatnonzero(eligible)
    # Largest tuples first within each keyframe (lexsort: last key is primary).
    tb = tiebreak[elig]
    order = np.lexsort((-tb[:, 4], -tb[:, 3], -tb[:, 2], -tb[:, 1], -tb[:, 0], kf[elig]))
    elig_sorted = elig[order]
    e_kf = kf[elig_sorted]
    e_starts = np.flatnonzero(np.r_[True, e_kf[1:] != e_kf[:-1]])
    rank = np.arange(len(elig_sorted)) - np.repeat(e_starts, np.diff(np.r_[e_starts, len(elig_sorted)]))
    chosen = elig_sorted[rank < m[e_kf]]
    return np.sort(np.concatenate([np.flatnonzero(above), chosen]))
