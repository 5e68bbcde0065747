"""The Charades localization submission file: one line per (video, frame),
``<video_id> <frame> <score_c000> ... <score_cNNN>``, whitespace-separated, frames 1..25.

Reading follows the official script: fields are the id, an integer frame number and the rest of the
line as scores; if the smallest frame number in the file is 0 the file is taken as 0-indexed and 1
is added to every frame number (the script warns and does the same). Unlike the script, a line whose
score count differs from the class count, or a (video, frame) given twice, is an error naming
``file:line`` instead of a warning (the script's map would silently keep one of the two).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stad_core.atomic import atomic_write_text
from stad_core.errors import InputFileError


@dataclass(frozen=True)
class Submission:
    predictions: dict[tuple[str, int], np.ndarray]  # (video_id, 1-based frame) -> scores [C]
    shifted_from_zero: bool  # the file was 0-indexed and was shifted by one


def read_submission(path: str | Path, num_classes: int) -> Submission:
    rows: list[tuple[str, int, np.ndarray, int]] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise InputFileError(path, "expected '<video_id> <frame> <scores...>'", line=line_no)
            try:
                frame = int(fields[1])
            except ValueError:
                raise InputFileError(path, f"frame {fields[1]!r} is not an integer", line=line_no) from None
            try:
                scores = np.array([float(x) for x in fields[2:]], np.float64)
            except ValueError:
                raise InputFileError(path, "a score is not a number", line=line_no) from None
            if len(scores) != num_classes:
                raise InputFileError(path, f"{len(scores)} scores, expected {num_classes} (one per class)", line=line_no)
            rows.append((fields[0], frame, scores, line_no))
    shift = bool(rows) and min(r[1] for r in rows) == 0
    predictions: dict[tuple[str, int], np.ndarray] = {}
    first: dict[tuple[str, int], int] = {}
    for video_id, frame, scores, line_no in rows:
        key = (video_id, frame + 1 if shift else frame)
        if key in first:
            raise InputFileError(path, f"{video_id} frame {key[1]} scored again (first at line {first[key]})", line=line_no)
        first[key] = line_no
        predictions[key] = scores
    return Submission(predictions, shift)


def format_submission(predictions: Iterable[tuple[str, int, np.ndarray]]) -> str:
    """Text of a submission from ``(video_id, frame 1-based, scores [C])`` triples."""
    return "".join(f"{v} {frame} " + " ".join(f"{s:.6g}" for s in np.asarray(scores).tolist()) + "\n"
                   for v, frame, scores in predictions)


def write_submission(path: str | Path, predictions: Iterable[tuple[str, int, np.ndarray]]) -> None:
    atomic_write_text(Path(path), format_submission(predictions))
