"""Reading AVA CSVs: ground truth, detections/results (:func:`read_ava_csv`) and exclusions.

:func:`read_ava_csv` is the one reader of AVA box CSVs, for 300-row test files and 11M-row
evaluation results alike. It tries the fast path (:mod:`stad_core.ava.csv_fast`, pyarrow) and,
when pyarrow rejects the file, the diagnostic path (:mod:`stad_core.ava.csv_diagnose`), which
names the file and line of the first problem; both produce the same :class:`CsvColumns`, checked
by :mod:`stad_core.ava.csv_validate`. ``docs/data-formats.md`` lists every tolerance decision.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stad_core.ava.csv_columns import LAYOUTS, CsvColumns, Kind, Layout, layout_hint
from stad_core.ava.csv_diagnose import parse_lines
from stad_core.ava.csv_fast import parse_fast
from stad_core.ava.csv_validate import validate
from stad_core.ava.keys import AvaFormatError, KeyframeKey, check_readable, parse_integer_second
from stad_core.ava.table import AvaTable


def read_ava_csv(
    path: str | Path,
    *,
    kind: Kind,
    keep_action_ids: Collection[int] | None = None,
    allow_boxless_rows: bool = False,
    validate_boxes: bool = True,
    strict_person_ids: bool = False,
    known_action_ids: Collection[int] | None = None,
    known_from: str = "the label map",
    lenient: bool = False,
    pixel_boxes: tuple[float, float] | None = None,
) -> AvaTable:
    """Read an AVA ground-truth or detection CSV into an :class:`AvaTable`.

    Args:
        path: the CSV (no header; 7 or 8 columns, see :mod:`stad_core.ava.csv_columns`).
        kind: ``"groundtruth"`` (7th column action id, optional 8th person id) or
            ``"detections"`` (8 columns with action id and score, or 7 with score only).
        keep_action_ids: keep only rows with these action ids (e.g. the 60 evaluated classes);
            rows are validated before they are filtered.
        allow_boxless_rows: accept rows that give a keyframe but no box (``vid,0902`` or empty
            box fields); they are collected in ``table.boxless`` instead of being an error.
        validate_boxes: reject boxes outside ``[0, 1]`` (+-1e-3) and inverted boxes (``x1 > x2``
            or ``y1 > y2``); zero-area boxes are never an error. Scores must be in ``[0, 1]``.
        strict_person_ids: a person id that is not an integer (real AVA rows contain ``3_``) or is
            below -1 is an error instead of a warning with the id set to -1.
        known_action_ids: the class ids the file may use (a label map's); another id is an error
            naming ``known_from`` (e.g. ``"the label map"``). None: any positive id.
        lenient: turn the problems a reader can work around into warnings (``table.warnings``, one
            line per problem with its first ``file:line`` and a count): boxes outside ``[0, 1]`` are
            clipped, inverted boxes and scores outside ``[0, 1]`` kept, rows with unknown action
            ids and blank lines dropped. Boxes that look like pixels stay an error.
        pixel_boxes: ``(width, height)``: the file's boxes are pixel coordinates of frames this
            size; x is divided by ``width`` and y by ``height`` before the checks.

    Columns a layout lacks (person ids of detections, action ids of proposals) are read-only
    broadcast views of -1 that cost no memory.

    Raises:
        InputFileError: the file is missing.
        AvaFormatError: a malformed file, naming the first bad line and what is wrong there.
    """
    path = check_readable(path, "AVA CSV")
    layout = _choose_layout(path, kind, allow_boxless_rows)
    unterminated = _last_byte(path) not in (b"\n", b"\r", b"")
    options = dict(
        allow_boxless_rows=allow_boxless_rows, validate_boxes=validate_boxes, strict_person_ids=strict_person_ids,
        known_action_ids=known_action_ids, known_from=known_from, lenient=lenient, pixel_boxes=pixel_boxes,
    )
    try:
        columns = parse_fast(path, layout)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as arrow_error:
        columns = None
        if layout.has("person_id") and not strict_person_ids:
            # Most often a non-integer person id (real AVA files contain "3_"): retry fast with
            # that column read as text before falling back to the diagnostic path.
            try:
                columns = parse_fast(path, layout, person_as_text=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                columns = None
        if columns is None:
            columns = _diagnose(path, kind, layout, arrow_error, unterminated, options)
    table = validate(columns, path, kind, unterminated=unterminated, **options)
    if keep_action_ids is not None:
        table = table.select(np.isin(table.action_id, np.fromiter(keep_action_ids, dtype=np.int64)))
    return table


def _diagnose(
    path: Path, kind: str, layout: Layout, arrow_error: Exception, unterminated: bool, options: dict[str, Any]
) -> CsvColumns:
    """Parse line by line after pyarrow gave up: raise the first problem with its line number, or
    return the rows when the file is fine for us but not for pyarrow (2-column boxless rows, lines
    of blanks, which validation then reports or a lenient read drops)."""
    columns, error = parse_lines(
        path,
        kind,
        layout,
        allow_boxless_rows=options["allow_boxless_rows"],
        strict_person_ids=options["strict_person_ids"],
        unterminated=unterminated,
    )
    if error is not None:
        # Problems in the rows before the syntax error come first.
        validate(columns, path, kind, unterminated=False, **options)
        raise error from None
    if not columns.boxless and columns.person_junk is None and not columns.nulls:
        raise AvaFormatError(path, f"could not parse the file: {arrow_error}") from None
    return columns


def _first_line(path: Path) -> tuple[int, str] | None:
    """(line number, text) of the first non-blank line, or None for an empty/blank file."""
    with path.open("rb") as fh:
        for lineno, raw_line in enumerate(fh, start=1):
            text = raw_line.decode("utf-8-sig" if lineno == 1 else "utf-8", "replace").strip()
            if text:
                return lineno, text
    return None


def _choose_layout(path: Path, kind: str, allow_boxless_rows: bool) -> Layout:
    """The layout of ``path`` from the column count of its first row (first boxed row if boxless
    rows are allowed)."""
    if kind not in ("groundtruth", "detections"):
        raise ValueError(f"kind must be 'groundtruth' or 'detections', got {kind!r}")
    first = _first_line(path)
    if first is None:
        raise AvaFormatError(path, "file is empty", hint="an AVA CSV needs at least one row")
    lineno, text = first
    ncols = text.count(",") + 1
    if ncols == 2 and allow_boxless_rows:
        # Look further for the first row with a box; an all-boxless file is read as 8 columns.
        with path.open("rb") as fh:
            for raw_line in fh:
                count = raw_line.count(b",") + 1
                if count > 2:
                    ncols = count
                    break
            else:
                ncols = 8
    layout = LAYOUTS.get((kind, ncols))
    if layout is None:
        raise AvaFormatError(path, f"expected 7 or 8 columns, got {ncols}", line=lineno, hint=layout_hint(kind))
    return layout


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return b""
        fh.seek(-1, 2)
        return fh.read(1)


def read_exclusions(path: str | Path) -> set[KeyframeKey]:
    """Read excluded keyframes (``video_id,timestamp`` per line; ``902`` and ``0902`` alike).

    Blank lines at the end are tolerated, anywhere else they are an error.
    """
    path = check_readable(path, "exclusions file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise AvaFormatError(path, "not UTF-8 text") from None
    while lines and not lines[-1].strip():
        lines.pop()
    keys: set[KeyframeKey] = set()
    for lineno, text in enumerate(lines, start=1):
        if not text.strip():
            raise AvaFormatError(path, "blank line", line=lineno, hint="remove it")
        fields = text.split(",")
        if len(fields) != 2:
            raise AvaFormatError(path, f"expected 2 columns (video_id,timestamp), got {len(fields)}", line=lineno)
        video_id = fields[0].strip()
        if not video_id:
            raise AvaFormatError(path, "empty video_id", line=lineno)
        try:
            keys.add(KeyframeKey(video_id, parse_integer_second(fields[1].strip(), what="excluded keyframe")))
        except ValueError as exc:
            raise AvaFormatError(path, str(exc), line=lineno) from None
    return keys
