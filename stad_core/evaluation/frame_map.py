"""AVA frame-mAP: ground truth + detections (columnar tables) -> per-class AP and mAP.

One pass over whole arrays, no per-keyframe Python loop:

1. keep rows whose action id is in the label map; key every row by keyframe
   (``video << 40 | time``: the integer second for protocol 2019, microseconds for 2020);
2. cap detections per keyframe with the official heap rule (:mod:`.topk`), then drop excluded
   keyframes, detections on keyframes the protocol ignores and degenerate boxes;
3. match detections to ground truth of the same keyframe and class (:mod:`.matching`);
4. rank each class's detections by score (:mod:`.ranking`) and compute VOC AP (:mod:`.ap`).

Independent pieces (blocks of the cap, chunks of the matching, classes of the ranking) run on
two threads (:mod:`.threads`); the results do not depend on it.

Equal scores: the official evaluator ranks each class with numpy's (unstable) ``argsort`` on the
class's scores concatenated keyframe by keyframe. We build the same array in the same order and
call the same sort, so tied scores land where the official evaluator puts them on the same numpy
build (and, like it, may move on another). Within one keyframe, tied detections are visited in
file order (the official visits them in its heap's internal order; see docs/evaluation.md).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.table import AvaTable
from stad_core.errors import StadError
from stad_core.evaluation.ap import precision_recall, voc_average_precision
from stad_core.evaluation.groups import class_groups
from stad_core.evaluation.matching import best_ground_truth, first_claims
from stad_core.evaluation.ranking import ClassRows, ranked_true_positives
from stad_core.evaluation.rules import EvalRules, rules_for
from stad_core.evaluation.threads import for_chunks, parallel_map
from stad_core.evaluation.topk import top_k_per_keyframe

_TIME_BITS = 40
#: Detections per chunk of the matching, whose per-row temporaries would otherwise grow with the
#: file: tens of MB instead of hundreds on an 11M-row run.
MATCH_CHUNK = 1 << 20
_MAX_TIME_CODE = (1 << _TIME_BITS) - 1


class LabelMapLike(Protocol):
    """What evaluation needs from a label map: ``{id: name}`` and optional ``{id: label_type}``."""

    names: Mapping[int, str]
    label_types: Mapping[int, str]


@dataclass(frozen=True)
class ClassResult:
    """One evaluated class. ``ap`` is NaN when the class has no ground truth (left out of mAP)."""

    id: int
    name: str
    group: str
    ap: float
    num_gt: int
    num_det: int
    num_tp: int


@dataclass
class FrameMapResult:
    """Frame-mAP of one set of detections against one ground truth.

    Attributes:
        mAP: mean AP over classes with a finite AP (NaN if there is none).
        classes: per-class results in label-map id order.
        groups: group name -> ``(class ids, mean AP of those with a finite AP)``.
        pr_curves: class id -> ``(precision [D], recall [D])`` over its ranked detections.
        rules: the rule set that produced the numbers.
        iou_threshold: matching threshold.
        stats: row and keyframe counts at each filtering step (what was dropped and why).
    """

    mAP: float
    classes: list[ClassResult]
    groups: dict[str, tuple[list[int], float]]
    pr_curves: dict[int, tuple[np.ndarray, np.ndarray]]
    rules: EvalRules
    iou_threshold: float
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def per_class(self) -> dict[int, float]:
        """Class id -> AP (NaN where the class has no ground truth)."""
        return {c.id: c.ap for c in self.classes}

    @property
    def num_gt(self) -> dict[int, int]:
        """Class id -> number of ground-truth instances counted."""
        return {c.id: c.num_gt for c in self.classes}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN -> None); PR curves are left out (see the report writer)."""
        return {
            "mAP": _nan_to_none(self.mAP),
            "per_class": {str(c.id): _nan_to_none(c.ap) for c in self.classes},
            "num_gt": {str(c.id): c.num_gt for c in self.classes},
            "num_det": {str(c.id): c.num_det for c in self.classes},
            "num_tp": {str(c.id): c.num_tp for c in self.classes},
            "class_names": {str(c.id): c.name for c in self.classes},
            "groups": {
                name: {"classes": ids, "mAP": _nan_to_none(value)} for name, (ids, value) in self.groups.items()
            },
            "protocol": self.rules.protocol,
            "variant": self.rules.variant,
            "iou_threshold": self.iou_threshold,
            "top_k": self.rules.top_k,
            "stats": dict(self.stats),
        }


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def nanmean(values: list[float]) -> float:
    """Mean of the finite entries; NaN (without a warning) when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _official_mean(ap_by_id: Mapping[int, float]) -> float:
    """nanmean over an array indexed by class id - 1, as the official evaluator lays it out, so
    even the last bit of the mean agrees (summation order)."""
    finite = [v for v in ap_by_id.values() if not math.isnan(v)]
    if not finite:
        return math.nan
    ids = [i for i in ap_by_id if i >= 1]
    if len(ids) != len(ap_by_id):
        return nanmean(list(ap_by_id.values()))
    values = np.full(max(ids), np.nan)
    for i, v in ap_by_id.items():
        values[i - 1] = v
    return float(np.nanmean(values))


# ---------------------------------------------------------------------------------------------
# Keyframe keys.


def _time_codes(timestamp: np.ndarray, protocol: str, source: str) -> np.ndarray:
    """``[N]`` int64 time part of the keyframe key."""
    if protocol == "2019":
        codes = np.trunc(timestamp)  # the official key is int(timestamp)
    else:
        codes = np.rint(timestamp * 1e6)  # the 2020 key is the timestamp to 6 decimals
    if len(codes) and (codes.min() < 0 or codes.max() > _MAX_TIME_CODE):
        raise StadError(f"{source}: timestamps must be non-negative and below {_MAX_TIME_CODE // 10**6} s")
    return codes.astype(np.int64)


class _KeySpace:
    """Joint video vocabulary so keys from different files compare as int64."""

    def __init__(self, *video_lists: Collection[str]) -> None:
        names = sorted({str(v) for videos in video_lists for v in videos})
        if len(names) >= 1 << (63 - _TIME_BITS):
            raise StadError(f"too many videos ({len(names)}) for the keyframe key")
        self.names = np.asarray(names, dtype=str)

    def video_codes(self, videos: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.names, np.asarray(videos, dtype=str)).astype(np.int64)

    def table_keys(self, table: AvaTable, protocol: str) -> np.ndarray:
        """``[N]`` int64 keyframe key of each row."""
        codes = self.video_codes(table.videos)[table.video_index] if len(table) else np.zeros(0, np.int64)
        return (codes << _TIME_BITS) | _time_codes(table.timestamp, protocol, table.source)

    def pair_keys(self, video_ids: list[str], timestamps: list[float], protocol: str, source: str) -> np.ndarray:
        if not video_ids:
            return np.zeros(0, dtype=np.int64)
        codes = self.video_codes(np.asarray(video_ids, dtype=str))
        return (codes << _TIME_BITS) | _time_codes(np.asarray(timestamps, dtype=np.float64), protocol, source)


def _keyframe_ranks(
    table: AvaTable, rows: np.ndarray | None, space: _KeySpace, protocol: str
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Keyframe of each row (``rows``, or all rows when None), numbered by first appearance.

    Returns:
        keys: ``[K]`` int64 keyframe key of each rank,
        runs: ``([U] int32 rank, [U] int64 length)`` of the runs of rows with one keyframe:
            ``np.repeat(run_rank, run_length)`` is each row's ``[N]`` rank, and
            ``np.repeat(values[run_rank], run_length)`` takes per-keyframe ``values`` to the rows
            (sequential, and cheaper than a gather by rank on ~11M rows).

    Keys are computed per run of equal ``(video, timestamp)`` rows -- AVA files list a
    keyframe's rows together, so there are ~K runs for N rows.
    """
    vi = table.video_index if rows is None else table.video_index[rows]
    ts = table.timestamp if rows is None else table.timestamp[rows]
    n = len(vi)
    if n == 0:
        return np.zeros(0, dtype=np.int64), (np.zeros(0, np.int32), np.zeros(0, np.int64))
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(vi[1:], vi[:-1], out=change[1:])
    change[1:] |= ts[1:] != ts[:-1]
    starts = np.flatnonzero(change)
    del change
    codes = space.video_codes(table.videos)[vi[starts]]
    run_keys = (codes << _TIME_BITS) | _time_codes(ts[starts], protocol, table.source)
    run_kf, unique, first_seen = _dense_ids(run_keys)
    keys_by_rank = np.empty_like(unique)
    keys_by_rank[first_seen] = unique
    run_rank = first_seen[run_kf].astype(np.int32)
    run_length = np.diff(np.r_[starts, n])
    return keys_by_rank, (run_rank, run_length)


def _dense_ids(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number the distinct ``keys`` (cheap when equal keys come in runs, as in AVA files).

    Returns:
        ids: ``[N]`` int64 id of each row's key (ids follow sorted key order),
        unique: ``[K]`` the sorted distinct keys,
        first_seen: ``[K]`` int64 rank of each key by first appearance in ``keys``.
    """
    if len(keys) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, keys[:0], empty
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    unique, run_ids = np.unique(keys[starts], return_inverse=True)
    # np.unique with return_index sorts stably: the index is each id's first run.
    _, first_run = np.unique(run_ids, return_index=True)
    first_seen = np.empty(len(unique), dtype=np.int64)
    first_seen[np.argsort(first_run, kind="stable")] = np.arange(len(unique))
    return np.repeat(run_ids, np.diff(np.r_[starts, len(keys)])), unique, first_seen


# ---------------------------------------------------------------------------------------------
# The evaluation.


def evaluate_frame_map(
    groundtruth: AvaTable,
    detections: AvaTable,
    labelmap: LabelMapLike,
    *,
    exclusions: Collection[KeyframeKey] | None = None,
    protocol: str = "2019",
    variant: str = "official",
    iou_threshold: float = 0.5,
    top_k: int | None = 50,
) -> FrameMapResult:
    """Frame-mAP@``iou_threshold`` of ``detections`` against ``groundtruth``.

    Args:
        groundtruth: ground-truth rows (``score`` None); ``boxless`` lists keyframes annotated
            without boxes (protocol 2020).
        detections: detection rows with scores, in file order (the order the cap and ties use).
        labelmap: the evaluated classes; rows with other action ids are dropped.
        exclusions: keyframes removed from ground truth and detections (protocol 2019).
        protocol: ``"2019"`` (default) or ``"2020"``, see :class:`EvalRules`.
        variant: ``"official"``, ``"mmaction2"`` or ``"pyslowfast"`` (their rules, to explain
            differences; see ``docs/evaluation.md``).
        iou_threshold: a detection matches a box with IoU >= this.
        top_k: the official per-keyframe detection cap (None: no cap; variants have none).

    Raises:
        StadError: no classes in the label map, wrong table kinds, exclusions with protocol
            2020, or unusable timestamps.
    """
    rules = rules_for(protocol, variant, top_k=top_k)
    if detections.score is None:
        raise StadError(f"{detections.source}: detections need a score column")
    if groundtruth.score is not None:
        raise StadError(f"{groundtruth.source}: ground truth must not have a score column (is it a detections file?)")
    class_ids = np.asarray(sorted(int(i) for i in labelmap.names), dtype=np.int64)
    if len(class_ids) == 0:
        raise StadError("the label map has no classes: nothing to evaluate")
    if rules.protocol == "2020" and exclusions:
        raise StadError("protocol 2020 takes no exclusions (unannotated keyframes are simply absent from its ground truth)")
    if not 0.0 < iou_threshold <= 1.0:
        raise StadError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    exclusions = list(exclusions or ())
    stats: dict[str, int] = {"gt_rows": len(groundtruth), "det_rows": len(detections)}

    # Class index per action id (-1: not evaluated).
    n_classes = len(class_ids)
    lut_size = int(max(class_ids.max(), groundtruth.action_id.max(initial=0), detections.action_id.max(initial=0))) + 1
    lut = np.full(lut_size, -1, dtype=np.int32)
    lut[class_ids] = np.arange(n_classes, dtype=np.int32)

    space = _KeySpace(
        groundtruth.videos,
        detections.videos,
        [k.video_id for k in exclusions],
        [v for v, _ in groundtruth.boxless],
    )
    excluded_keys = space.pair_keys(
        [k.video_id for k in exclusions], [float(k.timestamp) for k in exclusions], rules.protocol, "exclusions"
    )
    gt = _prepare_groundtruth(groundtruth, lut, n_classes, space, excluded_keys, rules, stats)
    det = _select_detections(detections, groundtruth, gt, lut, space, excluded_keys, rules, stats)
    # The table's other columns are not needed any more: when the caller handed it over (as
    # evaluate_files does), its memory (~0.6 GB at AVA-val scale) goes before the ranking.
    del detections

    by_score = not rules.match_in_file_order
    tp = _match(gt, det, n_classes, rules, iou_threshold)
    det.boxes = det.box_rows = det.gt_keyframe = None  # matched: only classes, scores and ranks are left

    # ---- AP per class, on each class's list as the official code concatenates it (see
    # :mod:`.ranking`), the classes in parallel.
    class_rows = ClassRows(det.cls, n_classes)
    groups = class_groups(labelmap, [int(c) for c in class_ids])
    group_of = {cid: name for name, ids in groups.items() for cid in ids}

    def one_class(c: int) -> tuple[ClassResult, tuple[np.ndarray, np.ndarray] | None]:
        cid = int(class_ids[c])
        tp_ranked = ranked_true_positives(class_rows.rows(c), det.score, det.image_rank, tp, by_score=by_score)
        ap, curve = math.nan, None
        if gt.num_gt[c] > 0 and not (rules.only_detected_classes and len(tp_ranked) == 0):
            curve = precision_recall(tp_ranked, int(gt.num_gt[c]))
            ap = voc_average_precision(*curve)
        result = ClassResult(
            id=cid,
            name=str(labelmap.names[cid]),
            group=group_of[cid],
            ap=ap,
            num_gt=int(gt.num_gt[c]),
            num_det=len(tp_ranked),
            num_tp=int(np.count_nonzero(tp_ranked)),
        )
        return result, curve

    classes: list[ClassResult] = []
    curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for result, curve in parallel_map(one_class, range(n_classes)):
        classes.append(result)
        if curve is not None:
            curves[result.id] = curve
    by_id = {c.id: c.ap for c in classes}
    return FrameMapResult(
        mAP=_official_mean(by_id),
        classes=classes,
        groups={name: (ids, nanmean([by_id[i] for i in ids])) for name, ids in groups.items()},
        pr_curves=curves,
        rules=rules,
        iou_threshold=iou_threshold,
        stats=stats,
    )


def _lookup(lut: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``lut[max(ids, 0)]`` for ``[N]`` int ``ids``, a chunk at a time: a gather by an int32 index
    makes an int64 copy of it first (95 MB for 11.8M rows, and fresh pages are slow to touch)."""
    out = np.empty(len(ids), dtype=lut.dtype)

    def chunk(lo: int, hi: int) -> None:
        out[lo:hi] = lut[np.maximum(ids[lo:hi], 0)]

    for_chunks(len(ids), chunk)
    return out


def _index_dtype(n: int) -> type:
    return np.int32 if n < 1 << 31 else np.int64


@dataclass
class _GroundTruth:
    """Evaluated ground-truth rows (label-map classes, not excluded) and per-class counts."""

    key_all: np.ndarray  # [M_all] int64 keyframe key of every row read (2020: listed keyframes)
    key: np.ndarray  # [M] int64 keyframe key of each evaluated row
    cls: np.ndarray  # [M] int32 class index
    boxes: np.ndarray  # [M, 4]
    keyframes: np.ndarray  # [G] sorted keys of keyframes with evaluated ground truth
    num_gt: np.ndarray  # [C] positives per class


def _prepare_groundtruth(
    table: AvaTable,
    lut: np.ndarray,
    n_classes: int,
    space: _KeySpace,
    excluded_keys: np.ndarray,
    rules: EvalRules,
    stats: dict[str, int],
) -> _GroundTruth:
    key_all = space.table_keys(table, rules.protocol)
    cls_all = lut[np.maximum(table.action_id, 0)]
    cls_all[table.action_id < 0] = -1
    excluded = np.isin(key_all, excluded_keys)
    rows = np.flatnonzero((cls_all >= 0) & ~excluded)
    # MMAction2 counts positives over every row it read, excluded keyframes included.
    counted = np.flatnonzero((cls_all >= 0) & (~excluded | rules.count_excluded_gt))
    stats["gt_rows_not_in_labelmap"] = int(np.count_nonzero(cls_all < 0))
    stats["gt_rows_excluded"] = int(np.count_nonzero((cls_all >= 0) & excluded))
    key = key_all[rows]
    keyframes = np.unique(key)
    stats["gt_keyframes"] = len(keyframes)
    return _GroundTruth(
        key_all=key_all,
        key=key,
        cls=cls_all[rows],
        boxes=table.boxes[rows],
        keyframes=keyframes,
        num_gt=np.bincount(cls_all[counted], minlength=n_classes),
    )


@dataclass
class _Detections:
    """Detections that take part in matching and ranking, in file order."""

    cls: np.ndarray  # [D] int32 class index; the number of classes for rows that take no part
    score: np.ndarray  # [D] float64 (float32 for MMAction2's rules)
    boxes: np.ndarray | None  # [N, 4] every row's box; detection i's is boxes[box_rows[i]] (None once matched)
    box_rows: np.ndarray | None  # [D] int64 row of each detection in ``boxes`` (None: row i)
    gt_keyframe: np.ndarray | None  # [D] int32 index into _GroundTruth.keyframes, -1 if none (None once matched)
    image_rank: np.ndarray  # [D] int32 keyframe order of the official per-class lists


def _select_detections(
    table: AvaTable,
    groundtruth: AvaTable,
    gt: _GroundTruth,
    lut: np.ndarray,
    space: _KeySpace,
    excluded_keys: np.ndarray,
    rules: EvalRules,
    stats: dict[str, int],
) -> _Detections:
    """Label map, cap, exclusions, unknown keyframes, degenerate boxes -- in the official order.

    Keyframe attributes are computed once per keyframe (indexed by first-seen rank) and rows carry
    only that rank: on AVA-val scale that saves a dozen passes over ~11M rows.
    """
    cls_all = _lookup(lut, table.action_id)
    if len(cls_all) and cls_all.min() >= 0 and table.action_id.min() >= 0:
        rows = None  # every row is evaluated (the common case): no gathers
        n_rows = len(table)
    else:
        cls_all[table.action_id < 0] = -1
        rows = np.flatnonzero(cls_all >= 0)  # ascending: file order
        n_rows = len(rows)
    stats["det_rows_not_in_labelmap"] = len(table) - n_rows
    kf_keys, runs = _keyframe_ranks(table, rows, space, rules.protocol)  # [K] int64, runs
    # Each row's keyframe rank, [N] int32, made from the runs only when needed (MMAction2's rules
    # never need it): a fresh 47 MB array costs as much to touch as to fill.
    rank: np.ndarray | None = None

    def row_rank() -> np.ndarray:
        nonlocal rank
        if rank is None:
            rank = np.repeat(runs[0], runs[1])
        return rank

    def per_row(values: np.ndarray) -> np.ndarray:
        """``values[rank]`` for per-keyframe ``values`` [K]: by runs while the rows are those read."""
        if runs is None:
            return values[row_rank()]
        return np.repeat(values[runs[0]], runs[1])

    if rules.top_k is not None and n_rows:

        def tiebreak(idx: np.ndarray) -> np.ndarray:  # the heap tuple after the score
            r = idx if rows is None else rows[idx]
            b = table.boxes[r]
            return np.column_stack([table.action_id[r].astype(np.float64), b[:, 1], b[:, 0], b[:, 3], b[:, 2]])

        kept = top_k_per_keyframe(
            row_rank(), table.score if rows is None else table.score[rows], tiebreak, rules.top_k, runs=runs
        )
        kept_rows = np.flatnonzero(kept)
        del kept
        stats["det_rows_over_top_k"] = n_rows - len(kept_rows)
        rows = kept_rows if rows is None else rows[kept_rows]
        rank = row_rank()[kept_rows]
        runs = None
        del kept_rows

    # Per-keyframe decisions (counted per keyframe), then one expansion to the rows (no gather
    # of the columns while every row stays: ``rows`` None means all of them, in file order).
    if runs is not None:
        kf_rows = np.bincount(runs[0], weights=runs[1], minlength=len(kf_keys)).astype(np.int64)
    else:
        kf_rows = np.bincount(row_rank(), minlength=len(kf_keys))
    keep_kf = ~np.isin(kf_keys, excluded_keys)  # [K]
    stats["det_rows_excluded"] = int(kf_rows[~keep_kf].sum())
    if rules.unknown_keyframes != "fp":
        if rules.unknown_keyframes == "ignore":
            listed = gt.keyframes
        else:
            boxless = groundtruth.boxless
            boxless_keys = space.pair_keys([v for v, _ in boxless], [t for _, t in boxless], rules.protocol, groundtruth.source)
            listed = np.union1d(gt.key_all, boxless_keys)
        known_kf = np.isin(kf_keys, listed)
        stats["det_rows_on_unlisted_keyframes"] = int(kf_rows[keep_kf & ~known_kf].sum())
        keep_kf &= known_kf
    keep = per_row(keep_kf)
    if rules.drop_degenerate:
        b = table.boxes
        if rows is None:
            proper = np.empty(len(b), dtype=bool)

            def upright(lo: int, hi: int) -> None:
                proper[lo:hi] = (b[lo:hi, 0] < b[lo:hi, 2]) & (b[lo:hi, 1] < b[lo:hi, 3])

            for_chunks(len(b), upright)
        else:  # only the rows still in (a quarter after the top-k cap)
            proper = (b[rows, 0] < b[rows, 2]) & (b[rows, 1] < b[rows, 3])
        stats["det_rows_degenerate"] = int(np.count_nonzero(keep & ~proper))
        keep &= proper
        del proper
    dropped = None  # [N] bool rows that take no part although they stay in the arrays
    if not keep.all():
        if rows is None and 2 * int(np.count_nonzero(keep)) > len(keep):
            # Most rows stay (no top-k cap): mark the others instead of gathering every column.
            dropped = ~keep
        else:
            selected = np.flatnonzero(keep)
            rows = selected if rows is None else rows[selected]
            rank = row_rank()[selected]
            runs = None
            del selected
    del keep
    in_arrays = n_rows if rows is None else len(rows)
    stats["det_rows_evaluated"] = in_arrays - (0 if dropped is None else int(np.count_nonzero(dropped)))

    # Each keyframe's place among the ground-truth keyframes (-1: none).
    if len(gt.keyframes):
        pos = np.minimum(np.searchsorted(gt.keyframes, kf_keys), len(gt.keyframes) - 1)
        kf_gt = np.where(gt.keyframes[pos] == kf_keys, pos, -1).astype(np.int32)
    else:
        kf_gt = np.full(len(kf_keys), -1, dtype=np.int32)
    gt_keyframe = per_row(kf_gt)
    if rules.unknown_keyframes != "ignore":
        image_rank = row_rank()
    else:
        # MMAction2 walks keyframes in ground-truth file order (its detections all have GT here;
        # dropped rows, marked below, may have none and get any rank).
        _, gt_unique, gt_first_seen = _dense_ids(gt.key)
        image_rank = per_row(gt_first_seen.astype(np.int32)[kf_gt])
    cls = cls_all if rows is None else cls_all[rows]
    if dropped is not None:
        cls[dropped] = int(lut.max()) + 1  # the class after the last: outside every class's list
        gt_keyframe[dropped] = -1  # and no ground truth to match
    score = table.score if rows is None else table.score[rows]
    if rules.float32:  # MMAction2 builds float32 score arrays; the ranking sorts those very values
        score32 = np.empty(len(score), dtype=np.float32)

        def cast(lo: int, hi: int) -> None:
            score32[lo:hi] = score[lo:hi]

        for_chunks(len(score), cast)
        score = score32
    return _Detections(
        cls=cls,
        score=score if rules.float32 else score.astype(np.float64, copy=False),
        boxes=table.boxes,
        box_rows=rows,
        gt_keyframe=gt_keyframe,
        image_rank=image_rank,
    )


def _match(
    gt: _GroundTruth,
    det: _Detections,
    n_classes: int,
    rules: EvalRules,
    iou_threshold: float,
) -> np.ndarray:
    """``[D]`` bool true-positive flag of each detection (see :mod:`.matching`): within a keyframe
    and class, detections are visited by descending score (file order for PySlowFast's rules)."""
    d = len(det.cls)
    tp = np.zeros(d, dtype=bool)
    if d == 0 or len(gt.key) == 0:
        return tp
    # Ground truth grouped by (keyframe, class); file order inside a group decides IoU ties.
    gt_group = np.searchsorted(gt.keyframes, gt.key) * n_classes + gt.cls
    order = np.argsort(gt_group, kind="stable")
    gt_group_sorted = gt_group[order]
    gt_boxes_sorted = gt.boxes[order]

    n_groups = len(gt.keyframes) * n_classes
    index = np.int32 if n_groups < 1 << 31 and len(gt.key) < 1 << 31 else np.int64
    table = n_groups <= 4 * d + (1 << 20)
    if table:
        # Each group's first row and size from a table indexed by group (a gather per detection
        # instead of two binary searches); the extra last slot answers group -1 with 0 rows.
        group_count = np.zeros(n_groups + 1, dtype=index)
        group_count[:n_groups] = np.bincount(gt_group_sorted, minlength=n_groups)
        group_start = np.cumsum(group_count, dtype=index) - group_count
    best = np.full(d, -1, dtype=_index_dtype(len(gt.key)))  # [D] chosen ground-truth row
    passes = np.zeros(d, dtype=bool)
    # A chunk of detections at a time: each one's best box is its own business, so per-detection
    # temporaries (group, candidates, gathered boxes, IoU blocks) stay at tens of MB instead of
    # growing with the file (hundreds of MB for an 11M-row run without the top-k cap), and
    # chunks go to two threads (each writes only its own rows of ``best`` and ``passes``).

    def match_chunk(lo: int) -> None:
        hi = min(d, lo + MATCH_CHUNK)
        keyframe = det.gt_keyframe[lo:hi]
        det_group = keyframe.astype(index)
        det_group *= n_classes
        det_group += det.cls[lo:hi]
        det_group[keyframe < 0] = -1
        if table:
            count, start = group_count[det_group], group_start[det_group]
        else:
            start = np.searchsorted(gt_group_sorted, det_group, side="left")
            count = np.searchsorted(gt_group_sorted, det_group, side="right") - start
        cand = np.flatnonzero(count > 0)
        rows = cand + lo
        boxes = det.boxes[rows if det.box_rows is None else det.box_rows[rows]]
        best_c, iou_c = best_ground_truth(boxes, start[cand], count[cand], gt_boxes_sorted, float32=rules.float32)
        best[rows] = best_c
        passes[rows] = iou_c >= iou_threshold

    for _ in parallel_map(match_chunk, range(0, d, MATCH_CHUNK)):
        pass
    return first_claims(best, passes, None if rules.match_in_file_order else det.score)
