"""Temporal-activity annotations: Charades CSVs and class lists, MultiTHUMOS-style interval files.

Charades (``Charades_v1_train.csv`` / ``Charades_v1_test.csv``) has a header row naming its columns;
only ``id``, ``actions`` and ``length`` are read. ``actions`` is ``;``-separated ``cNNN start end``
(seconds), empty for a video without activities; ``length`` is the video's duration in seconds.
``Charades_v1_classes.txt`` has one ``cNNN description`` per line; the class index is NNN.

MultiTHUMOS-style intervals: one text file per class (``<class name>.txt``), each line
``video_id start end`` (seconds); the class order comes from a class list (one name per line).

Every malformed row is an :class:`~stad_core.errors.InputFileError` naming ``file:line``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stad_core.errors import InputFileError

_CLASS_ID = re.compile(r"^c(\d+)$")


@dataclass(frozen=True)
class Activity:
    """One labelled interval: class index, start and end seconds (both inclusive, as Charades scores)."""

    label: int
    start: float
    end: float


@dataclass(frozen=True)
class TemporalVideo:
    """Ground truth of one video: its activities and its duration in seconds."""

    video_id: str
    length: float
    activities: tuple[Activity, ...] = ()


@dataclass(frozen=True)
class ClassList:
    """Class ids (``c000``...) or names in index order, with their descriptions."""

    ids: tuple[str, ...]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def index(self) -> dict[str, int]:
        return {cid: i for i, cid in enumerate(self.ids)}


def class_index(token: str) -> int | None:
    """``"c092"`` -> 92; anything else -> None."""
    m = _CLASS_ID.match(token)
    return int(m.group(1)) if m else None


def read_charades_classes(path: str | Path) -> ClassList:
    """``Charades_v1_classes.txt``: lines ``cNNN description``; ids must be c000, c001, ... in order."""
    ids: list[str] = []
    names: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            token, _, name = text.partition(" ")
            index = class_index(token)
            if index is None:
                raise InputFileError(path, f"expected 'cNNN description', got {text[:40]!r}", line=line_no)
            if index != len(ids):
                raise InputFileError(path, f"class {token} out of order: expected c{len(ids):03d}", line=line_no,
                                     hint="classes must be listed c000, c001, ... without gaps")
            ids.append(token)
            names.append(name.strip())
    if not ids:
        raise InputFileError(path, "no classes")
    return ClassList(tuple(ids), tuple(names))


def parse_actions(text: str, num_classes: int | None, *, path: str | Path, line: int) -> tuple[Activity, ...]:
    """``"c092 11.90 21.20;c147 0.00 12.60"`` -> activities (empty text: none)."""
    out: list[Activity] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        fields = part.split()
        label = class_index(fields[0]) if fields else None
        if len(fields) != 3 or label is None:
            raise InputFileError(path, f"action {part!r} is not 'cNNN start end'", line=line)
        if num_classes is not None and label >= num_classes:
            raise InputFileError(path, f"unknown class id {fields[0]} (the class list has c000..c{num_classes - 1:03d})",
                                 line=line)
        try:
            start, end = float(fields[1]), float(fields[2])
        except ValueError:
            raise InputFileError(path, f"action {part!r}: start/end are not numbers", line=line) from None
        out.append(Activity(label, start, end))
    return tuple(out)


def read_charades_csv(path: str | Path, classes: ClassList | None = None) -> list[TemporalVideo]:
    """The videos of a Charades CSV (header row required; columns ``id``, ``actions``, ``length``)."""
    num_classes = len(classes) if classes is not None else None
    videos: list[TemporalVideo] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise InputFileError(path, "empty file", hint="a Charades CSV starts with a header row")
        columns = {name.strip(): i for i, name in enumerate(header)}
        missing = [c for c in ("id", "actions", "length") if c not in columns]
        if missing:
            raise InputFileError(path, f"header lacks column(s) {', '.join(missing)}", line=1)
        width = max(columns[c] for c in ("id", "actions", "length")) + 1
        start_line = reader.line_num + 1
        for row in reader:
            line = start_line
            start_line = reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < width:
                raise InputFileError(path, f"{len(row)} fields, expected at least {width}", line=line)
            video_id = row[columns["id"]].strip()
            if not video_id:
                raise InputFileError(path, "empty id", line=line)
            if video_id in seen:
                raise InputFileError(path, f"video {video_id!r} listed again (first at line {seen[video_id]})", line=line)
            seen[video_id] = line
            try:
                length = float(row[columns["length"]])
            except ValueError:
                raise InputFileError(path, f"length {row[columns['length']]!r} is not a number", line=line) from None
            if not length > 0:
                raise InputFileError(path, f"length must be > 0 seconds, got {length}", line=line)
            activities = parse_actions(row[columns["actions"]], num_classes, path=path, line=line)
            videos.append(TemporalVideo(video_id, length, activities))
    return videos


def write_charades_csv(path: str | Path, videos: Iterable[TemporalVideo]) -> None:
    """A Charades-format CSV (``id,actions,length``) that :func:`read_charades_csv` reads back."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "actions", "length"])
        for v in videos:
            actions = ";".join(f"c{a.label:03d} {a.start:.2f} {a.end:.2f}" for a in v.activities)
            writer.writerow([v.video_id, actions, f"{v.length:.2f}"])


def write_charades_classes(path: str | Path, names: Sequence[str]) -> None:
    Path(path).write_text("".join(f"c{i:03d} {name}\n" for i, name in enumerate(names)), encoding="utf-8")


def read_class_list(path: str | Path) -> ClassList:
    """A MultiTHUMOS-style class list: one name per line (an optional leading index is dropped)."""
    names: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields:
                names.append(fields[-1])
    if not names:
        raise InputFileError(path, "no classes")
    return ClassList(tuple(names), tuple(names))


def read_interval_files(folder: str | Path, classes: ClassList, lengths: Mapping[str, float]) -> list[TemporalVideo]:
    """MultiTHUMOS-style ``<folder>/<class>.txt`` files (lines ``video_id start end``) -> videos.

    ``lengths`` gives every video's duration (seconds); a video named in a file but absent there is
    an error naming the file and line. A class without a file has no positives."""
    folder = Path(folder)
    known = set(classes.ids)
    for extra in sorted(p.stem for p in folder.glob("*.txt")):
        if extra not in known:
            raise InputFileError(folder / f"{extra}.txt", f"unknown class {extra!r} (not in the class list)")
    acts: dict[str, list[Activity]] = {v: [] for v in lengths}
    for label, name in enumerate(classes.ids):
        path = folder / f"{name}.txt"
        if not path.is_file():
            continue
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3:
                raise InputFileError(path, f"expected 'video_id start end', got {line.strip()[:60]!r}", line=line_no)
            video_id = fields[0]
            if video_id not in acts:
                raise InputFileError(path, f"unknown video {video_id!r} (not among the videos' lengths)", line=line_no)
            try:
                start, end = float(fields[1]), float(fields[2])
            except ValueError:
                raise InputFileError(path, "start/end are not numbers", line=line_no) from None
            acts[video_id].append(Activity(label, start, end))
    return [TemporalVideo(v, float(lengths[v]), tuple(acts[v])) for v in sorted(acts)]
