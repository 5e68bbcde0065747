"""Person proposals per keyframe: AVA-style CSVs with a score, and MMAction2's proposal pickles.

MMAction2 pickle: ``{"video_id,tttt": ndarray[N, 5]}`` with rows ``x1, y1, x2, y2, score``
(normalised; ``[N, 4]`` without scores also occurs). Pickles can run code when loaded, so they are
read with an unpickler that only accepts dicts, strings and numpy arrays.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stad_core.ava.csv_read import read_ava_csv
from stad_core.ava.csv_validate import Problems, check_boxes_and_scores, divide_pixel_boxes, tolerated_warning
from stad_core.ava.csv_write import write_ava_csv
from stad_core.ava.keys import AvaFormatError, KeyframeKey, check_readable, emit_warnings
from stad_core.ava.table import AvaTable

_PICKLE_MAGIC = b"\x80"  # every pickle protocol >= 2 starts with the PROTO opcode


@dataclass
class KeyframeDetections:
    """The person boxes found at one keyframe.

    Attributes:
        key: the keyframe.
        boxes: ``[N, 4]`` float32 normalised ``x1, y1, x2, y2``.
        scores: ``[N]`` float32 person scores (1.0 where the source had none).
        source: where they came from (a file path, detector name or ``"groundtruth"``).
        person_ids: ``[N]`` int64 person ids aligned with ``boxes`` (-1 = unknown), or None when
            the source has no identities (proposals, detectors).
    """

    key: KeyframeKey
    boxes: np.ndarray
    scores: np.ndarray
    source: str = "<memory>"
    person_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.scores) != len(self.boxes):
            raise ValueError(f"{self.key}: {len(self.boxes)} boxes but {len(self.scores)} scores")
        if self.person_ids is not None:
            self.person_ids = checked_person_ids(self.person_ids, len(self.boxes), str(self.key))

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, rows: np.ndarray) -> KeyframeDetections:
        """The boxes picked by a boolean mask ``[N]`` or an index array, ids kept aligned."""
        ids = None if self.person_ids is None else self.person_ids[rows]
        return KeyframeDetections(self.key, self.boxes[rows], self.scores[rows], self.source, ids)

    def above(self, score_threshold: float, *, keep_top_box: bool = True) -> KeyframeDetections:
        """Boxes scoring ``>= score_threshold``; with ``keep_top_box`` the best box(es) stay even
        when all score lower (MMAction2's rule: threshold = min(threshold, best score))."""
        if len(self) == 0:
            return self
        threshold = min(score_threshold, float(self.scores.max())) if keep_top_box else score_threshold
        return self.select(self.scores >= threshold)


def checked_person_ids(ids: object, n: int, where: str) -> np.ndarray:
    """``ids`` as a ``[n]`` int64 array (-1 = unknown); ValueError naming ``where`` when they do not
    fit ``n`` boxes, are not integers, or are below -1."""
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if arr.dtype.kind not in "iu" and arr.size:  # dtype.kind: cheap, this runs once per keyframe
        raise ValueError(f"{where}: person ids must be integers (-1 for unknown), got {arr.dtype}")
    if arr.dtype != np.int64 or arr.ndim != 1:
        arr = arr.astype(np.int64).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"{where}: {n} boxes but {len(arr)} person ids")
    if arr.size and arr.min() < -1:
        raise ValueError(f"{where}: person id {int(arr.min())} is below -1 (-1 means unknown)")
    return arr


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Resolves only the numpy globals needed to rebuild arrays (no arbitrary code)."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> object:
        canonical = module.replace("numpy.core.", "numpy._core.", 1) if module.startswith("numpy.core.") else module
        if (canonical, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are expected)")
        return getattr(importlib.import_module(canonical), name)


def _load_pickle(path: Path) -> object:
    with path.open("rb") as fh:
        try:
            return _ArraysOnlyUnpickler(fh).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
            raise AvaFormatError(path, f"not a readable proposals pickle: {exc}", hint="was it truncated?") from None


def _from_pickle(
    path: Path, *, lenient: bool, pixel_boxes: tuple[float, float] | None
) -> tuple[dict[KeyframeKey, KeyframeDetections], list[str]]:
    """The pickle's keyframes, validated like a detections CSV (one pass over all its rows), and
    the warnings of a lenient read."""
    data = _load_pickle(path)
    if not isinstance(data, Mapping):
        raise AvaFormatError(path, f"expected a dict {{'video_id,tttt': array[N, 5]}}, found {type(data).__name__}")
    keys: list[KeyframeKey] = []
    names: list[str] = []
    arrays: list[np.ndarray] = []
    seen: set[KeyframeKey] = set()
    for raw_key, value in data.items():
        where = f"entry {raw_key!r}"
        if not isinstance(raw_key, str):
            raise AvaFormatError(path, f"{where}: keys must be 'video_id,tttt' strings")
        try:
            key = KeyframeKey.parse(raw_key)
        except ValueError as exc:
            raise AvaFormatError(path, f"{where}: {exc}") from None
        array = np.asarray(value)
        if array.size == 0:
            array = array.reshape(0, 5)
        if array.ndim != 2 or array.shape[1] not in (4, 5) or not np.issubdtype(array.dtype, np.number):
            raise AvaFormatError(path, f"{where}: expected a numeric array [N, 5] (x1, y1, x2, y2, score), got shape {array.shape} {array.dtype}")
        array = array.astype(np.float64)
        if array.shape[1] == 4:
            array = np.column_stack([array, np.ones(len(array))])
        if key in seen:
            raise AvaFormatError(path, f"{where}: keyframe {key} appears twice ('902' and '0902' are the same)")
        seen.add(key)
        keys.append(key)
        names.append(where)
        arrays.append(array)
    rows = np.concatenate(arrays) if arrays else np.zeros((0, 5))
    boxes, scores = rows[:, :4], rows[:, 4]  # views: clipping and pixel division write through
    ends = np.cumsum([len(a) for a in arrays], dtype=np.int64)
    warnings = _check_rows(path, boxes, scores, names, ends, lenient=lenient, pixel_boxes=pixel_boxes)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    found = {
        key: KeyframeDetections(key, boxes[a:b], scores[a:b], str(path)) for key, a, b in zip(keys, starts, ends)
    }
    return found, warnings


def _check_rows(
    path: Path,
    boxes: np.ndarray,
    scores: np.ndarray,
    names: list[str],
    ends: np.ndarray,
    *,
    lenient: bool,
    pixel_boxes: tuple[float, float] | None,
) -> list[str]:
    """The CSV checks on a pickle's rows (``boxes`` [N, 4], ``scores`` [N]; entry ``i`` ends at row
    ``ends[i]``): raise the first problem naming its entry, or return a lenient read's warnings."""

    def entry(row: int) -> str:
        return names[int(np.searchsorted(ends, row, side="right"))]

    if pixel_boxes is not None:
        divide_pixel_boxes(boxes, pixel_boxes, path)
    problems = Problems(lenient=lenient)
    check_boxes_and_scores(problems, boxes, scores)
    if problems.row is not None:
        raise AvaFormatError(path, f"{entry(problems.row)}: {problems.problem}", hint=problems.hint)
    return [tolerated_warning(f"{path}: {entry(t.row)}", t) for t in sorted(problems.tolerated, key=lambda t: t.row)]


def group_by_keyframe(table: AvaTable, *, source: str | None = None) -> dict[KeyframeKey, KeyframeDetections]:
    """Group a detections table's rows into per-keyframe boxes, in file order within a keyframe.

    Rows repeating a box of the same keyframe (8-column result CSVs have one row per action) are
    merged, keeping the highest score and the first row's person id. Timestamps must be whole
    seconds. ``person_ids`` are filled when the table has a person id column (any id other than
    -1, e.g. 8-column ground truth) and left None otherwise (proposals, detections).
    """
    source = source or table.source
    if len(table) == 0:
        return {}
    fractional = table.timestamp != np.floor(table.timestamp)
    if fractional.any():
        r = int(np.argmax(fractional))
        raise AvaFormatError(table.source, f"timestamp {table.timestamp[r]!r} is not a whole second", line=int(table.line[r]) or None)
    scores = table.score if table.score is not None else np.ones(len(table))
    ids = table.person_id if _has_person_ids(table.person_id) else None
    key_video, key_time, inverse = table.keyframe_groups()
    # Merge duplicate (keyframe, box) rows; first-occurrence order keeps file order.
    combined = np.column_stack([inverse.astype(np.float64), table.boxes])
    _, first_rows, dup_inverse = np.unique(combined, axis=0, return_index=True, return_inverse=True)
    dup_inverse = dup_inverse.reshape(-1)
    best = np.full(len(first_rows), -np.inf)
    np.maximum.at(best, dup_inverse, scores)
    rows = np.sort(first_rows)
    merged_score = best[dup_inverse[rows]]
    row_key = inverse[rows]
    order = np.argsort(row_key, kind="stable")
    rows, merged_score, row_key = rows[order], merged_score[order], row_key[order]
    bounds = np.searchsorted(row_key, np.arange(len(key_video) + 1))
    out: dict[KeyframeKey, KeyframeDetections] = {}
    for k in range(len(key_video)):
        sl = slice(bounds[k], bounds[k + 1])
        key = KeyframeKey(str(table.videos[key_video[k]]), int(key_time[k]))
        out[key] = KeyframeDetections(key, table.boxes[rows[sl]], merged_score[sl], source,
                                      None if ids is None else ids[rows[sl]])
    return out


def _has_person_ids(column: np.ndarray) -> bool:
    """Whether a table's person id column carries any id (files without one hold only -1)."""
    if len(column) == 0:
        return False
    if column.strides == (0,):  # the reader's broadcast view for a missing column: one value
        return bool(column[0] >= 0)
    return bool((column >= 0).any())


def read_proposals(
    path: str | Path,
    *,
    score_threshold: float = 0.0,
    keep_top_box: bool = True,
    lenient: bool = False,
    pixel_boxes: tuple[float, float] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> dict[KeyframeKey, KeyframeDetections]:
    """Read person proposals from an MMAction2 pickle or an AVA-style CSV with scores.

    The format is recognised from the content (pickle magic byte), not the file name. CSVs have 7
    columns (``video_id, timestamp, x1, y1, x2, y2, score``) or 8 (with an action id before the
    score; repeated boxes are merged). Both are validated like a detections CSV: boxes inside
    ``[0, 1]`` and not inverted, scores in ``[0, 1]``.

    Args:
        score_threshold: keep boxes scoring ``>=`` this.
        keep_top_box: keep a keyframe's best box(es) even when below the threshold, as MMAction2's
            AVA dataset does (so no keyframe loses all its actors). Keyframes left with no box stay
            in the result with ``N = 0``.
        lenient: warn instead of refusing what a reader can work around (boxes clipped, inverted
            boxes and odd scores kept, blank CSV lines dropped); see :func:`read_ava_csv`.
        pixel_boxes: ``(width, height)``: boxes are pixels of frames this size.
        on_warning: receives each warning line; default :func:`warnings.warn`.

    Returns:
        keyframe -> detections, ordered by (video id, timestamp).
    """
    path = check_readable(path, "proposals file")
    with path.open("rb") as fh:
        magic = fh.read(1)
    if magic == _PICKLE_MAGIC:
        found, warnings = _from_pickle(path, lenient=lenient, pixel_boxes=pixel_boxes)
    else:
        table = read_ava_csv(path, kind="detections", lenient=lenient, pixel_boxes=pixel_boxes)
        found, warnings = group_by_keyframe(table, source=str(path)), table.warnings
    emit_warnings(warnings, on_warning)
    return {key: found[key].above(score_threshold, keep_top_box=keep_top_box) for key in sorted(found)}


def write_proposals(path: str | Path, detections: Iterable[KeyframeDetections] | Mapping[KeyframeKey, KeyframeDetections]) -> None:
    """Write proposals: an MMAction2 pickle (``float64 [N, 5]`` per key) when ``path`` ends in
    ``.pkl``/``.pickle``, otherwise a 7-column AVA CSV with scores."""
    items = list(detections.values()) if isinstance(detections, Mapping) else list(detections)
    items.sort(key=lambda d: d.key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".pkl", ".pickle"):
        payload = {d.key.image_key: np.column_stack([d.boxes, d.scores]).astype(np.float64) for d in items}
        with path.open("wb") as fh:
            pickle.dump(payload, fh, protocol=4)
        return
    n = [len(d) for d in items]
    table = AvaTable.from_arrays(
        np.repeat([d.key.video_id for d in items], n) if items else [],
        np.repeat([d.key.timestamp for d in items], n) if items else [],
        np.concatenate([d.boxes for d in items]).astype(np.float64) if items else np.zeros((0, 4)),
        score=np.concatenate([d.scores for d in items]).astype(np.float64) if items else np.zeros(0),
    )
    write_ava_csv(path, table)
