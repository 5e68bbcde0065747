"""Diagnostic path of the AVA CSV reader: a line-by-line parser that names the file and line.

The reader comes here when the fast path (pyarrow) gives up. It finds the exact line of a syntax
problem (wrong column count, a non-number, a truncated last row) and says what is wrong there,
and it parses the few things pyarrow cannot: 2-column ``video_id,timestamp`` rows (keyframes with
no box), non-integer person ids when they are tolerated, and lines of blanks (a row of empty
fields, which validation reports or a lenient read drops).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from stad_core.ava.csv_columns import (
    BOX,
    DTYPES,
    MAX_LISTED_WARNINGS,
    TRUNCATED_HINT,
    CsvColumns,
    Layout,
    layout_hint,
    line_dtype,
)
from stad_core.ava.keys import AvaFormatError


def parse_lines(
    path: Path, kind: str, layout: Layout, *, allow_boxless_rows: bool, strict_person_ids: bool, unterminated: bool
) -> tuple[CsvColumns, AvaFormatError | None]:
    """Parse ``path`` until its first syntax error.

    Returns the rows before that error (with their true line numbers) and the error, or all rows
    and None. ``unterminated`` (the file does not end in a newline) points the error on the last
    line at truncation.

    Raises:
        AvaFormatError: the file is not UTF-8 (naming the line).
    """
    parser = _LineParser(
        path, kind, layout, allow_boxless_rows=allow_boxless_rows, strict_person_ids=strict_person_ids,
        unterminated=unterminated,
    )
    return parser.parse()


_INTEGER = re.compile(r"-?[0-9]{1,18}")  # fits int64


def _looks_like_score(text: str) -> bool:
    """A person id such as ``0.998`` means a detections file was read as ground truth."""
    try:
        return "." in text and math.isfinite(float(text))
    except ValueError:
        return False


def _is_number_text(text: str) -> bool:
    return "_" not in text  # Python accepts 1_000; AVA files and pyarrow do not


class _LineParser:
    """Parses one file line by line; :func:`parse_lines` is its entry point."""

    def __init__(
        self,
        path: Path,
        kind: str,
        layout: Layout,
        *,
        allow_boxless_rows: bool,
        strict_person_ids: bool,
        unterminated: bool,
    ) -> None:
        self.path, self.kind, self.layout = path, kind, layout
        self.allow_boxless_rows = allow_boxless_rows
        self.strict_person_ids = strict_person_ids
        self.unterminated = unterminated

    def parse(self) -> tuple[CsvColumns, AvaFormatError | None]:
        """Parse until the first syntax error; return the rows before it and that error (or None)."""
        layout = self.layout
        value_names = layout.names[1:]
        video_ids: list[str] = []
        values: dict[str, list[float | int]] = {name: [] for name in value_names}
        null_rows: dict[str, list[int]] = {name: [] for name in value_names}
        junk_rows: list[int] = []
        junk_text: dict[int, str] = {}
        lines: list[int] = []
        boxless: list[tuple[str, float]] = []
        error: AvaFormatError | None = None
        text_lines = self._lines()
        last = len(text_lines)
        while last > 0 and not text_lines[last - 1].strip():
            last -= 1  # trailing blank lines are tolerated
        for lineno, text in enumerate(text_lines[:last], start=1):
            hint_if_last = TRUNCATED_HINT if (lineno == last and self.unterminated) else None
            if not text.strip():
                # A row of empty fields, as the fast path reads an empty line: validation reports
                # it (or a lenient read drops it) with the rest of the file's problems.
                for name in value_names:
                    null_rows[name].append(len(lines))
                    values[name].append(0)
                video_ids.append("")
                lines.append(lineno)
                continue
            fields = text.split(",")
            if len(fields) == 2 and self.allow_boxless_rows:
                try:
                    stamp = float(fields[1]) if _is_number_text(fields[1]) else math.nan
                except ValueError:
                    stamp = math.nan
                if not fields[0].strip() or not math.isfinite(stamp):
                    error = AvaFormatError(self.path, f"row {text!r} is not 'video_id,timestamp'", line=lineno)
                    break
                boxless.append((fields[0].strip(), stamp))
                continue
            if len(fields) != layout.ncols:
                error = AvaFormatError(
                    self.path,
                    f"expected {layout.ncols} columns, got {len(fields)}",
                    line=lineno,
                    hint=hint_if_last or layout_hint(self.kind),
                )
                break
            row_index = len(lines)
            problem = None
            for name, raw in zip(value_names, fields[1:]):
                raw = raw.strip()
                if raw == "":
                    null_rows[name].append(row_index)
                    values[name].append(0)
                    continue
                integer = name in ("action_id", "person_id")
                try:
                    if not _is_number_text(raw) or (integer and not _INTEGER.fullmatch(raw)):
                        raise ValueError  # stricter than int(): pyarrow rejects "+3" and "1_0"
                    value: float | int = int(raw) if integer else float(raw)
                except ValueError:
                    if name == "person_id" and _looks_like_score(raw):
                        problem = (f"person_id {raw!r} is a fractional number", "score")
                        break
                    if name == "person_id" and not self.strict_person_ids:
                        junk_rows.append(row_index)
                        if len(junk_text) < MAX_LISTED_WARNINGS:
                            junk_text[row_index] = raw
                        values[name].append(-1)
                        continue
                    kind_word = "an integer" if integer else "a number"
                    if integer and re.fullmatch(r"-?[0-9]+", raw):
                        kind_word = "an integer that fits in 64 bits"
                    problem = (f"{name} {raw!r} is not {kind_word}", name)
                    break
                values[name].append(value)
            if problem is not None:
                text_problem, name = problem
                hint = hint_if_last
                if hint is None and lineno == 1 and name == "timestamp":
                    hint = "AVA CSVs have no header row; remove it"
                elif hint is None and name == "score":
                    hint = "the 8th column looks like detection scores; read this file with kind='detections'"
                elif hint is None and name == "person_id":
                    hint = "pass strict_person_ids=False to keep such rows with an unknown person id"
                error = AvaFormatError(self.path, text_problem, line=lineno, hint=hint)
                break
            video_ids.append(fields[0].strip() if fields[0].strip() else "")
            lines.append(lineno)
        n = len(lines)
        names, codes = np.unique(np.asarray(video_ids, dtype=str), return_inverse=True) if n else (np.zeros(0, str), np.zeros(0, int))
        columns: dict[str, np.ndarray] = {}
        nulls: dict[str, np.ndarray] = {}
        for name in value_names:
            dtype = np.int64 if name == "action_id" else DTYPES.get(name, np.float64)  # boxes: float64
            # A row cut short by a syntax error may have left values behind: keep the first n.
            columns[name] = np.asarray(values[name][:n], dtype=dtype).reshape(n)
            rows = [r for r in null_rows[name] if r < n]
            if rows:
                mask = np.zeros(n, dtype=bool)
                mask[rows] = True
                nulls[name] = mask
        columns["boxes"] = np.column_stack([columns.pop(name) for name in BOX]).reshape(n, 4)
        junk = None
        junk_rows = [r for r in junk_rows if r < n]
        if junk_rows:
            junk = np.zeros(n, dtype=bool)
            junk[junk_rows] = True
        parsed = CsvColumns(
            layout,
            names.astype(object),
            codes.astype(np.int32),
            columns,
            nulls,
            np.asarray(lines, dtype=line_dtype(lines[-1] if lines else 0)),
            boxless,
            [],
            junk,
            junk_text,
        )
        return parsed, error

    def _lines(self) -> list[str]:
        data = self.path.read_bytes()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            lineno = data.count(b"\n", 0, exc.start) + 1
            raise AvaFormatError(self.path, "not UTF-8 text", line=lineno, hint="AVA CSVs are plain ASCII/UTF-8") from None
        # Split on "\n" only (str.splitlines also splits on \v, \f, U+2028 ...), so line numbers
        # agree with every other tool.
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [t[:-1] if t.endswith("\r") else t for t in lines]
