"""PySlowFast frame lists: which extracted JPEG is frame ``k`` of which video.

Space-separated with a header line::

    original_vido_id video_id frame_id path labels
    -5KQ66BBWC4 0 0 -5KQ66BBWC4/-5KQ66BBWC4_000001.jpg ""

(``original_vido_id`` is PySlowFast's spelling; ``original_video_id`` is accepted too). Frame ids
are 0-based positions in the video; ``labels`` is unused for AVA (``""``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from stad_core.ava.keys import AvaFormatError, check_readable

_HEADERS = (
    ("original_vido_id", "video_id", "frame_id", "path", "labels"),
    ("original_video_id", "video_id", "frame_id", "path", "labels"),
)
_NAMES = ["original_video_id", "video_id", "frame_id", "path", "labels"]


@dataclass
class FrameList:
    """N frames of V videos, columnar.

    Attributes:
        videos: ``[V]`` object array of original video ids, in order of first appearance
            (PySlowFast's video index order).
        video_index: ``[N]`` int32 codes into ``videos``.
        frame_id: ``[N]`` int64 0-based frame number within the video.
        path: ``[N]`` object array of frame image paths, relative to the frame directory.
        labels: ``[N]`` object array of the ``labels`` column as written (usually ``""``).
        source: the file read.
        warnings: tolerated oddities (gaps in frame ids, inconsistent numeric video ids).
    """

    videos: np.ndarray
    video_index: np.ndarray
    frame_id: np.ndarray
    path: np.ndarray
    labels: np.ndarray
    source: str = "<memory>"
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.video_index)

    def frame_paths(self, video: str, root: str | Path | None = None) -> list[str]:
        """Paths of ``video``'s frames ordered by frame id (joined to ``root`` when given)."""
        matches = np.flatnonzero(self.videos == video)
        if len(matches) == 0:
            raise KeyError(f"video {video!r} is not in frame list {self.source}")
        rows = np.flatnonzero(self.video_index == matches[0])
        rows = rows[np.argsort(self.frame_id[rows], kind="stable")]
        paths = self.path[rows].tolist()
        return [str(Path(root) / p) for p in paths] if root is not None else paths


def _scan_for_error(path: Path) -> AvaFormatError:
    """Find the first malformed line (pyarrow gives no line numbers)."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if lineno == 1:
                continue
            if not text.strip():
                return AvaFormatError(path, "blank line", line=lineno, hint="remove it")
            fields = text.split()
            if len(fields) != 5:
                return AvaFormatError(path, f"expected 5 space-separated columns, got {len(fields)}", line=lineno, hint=" ".join(_HEADERS[0]))
            for name, value in (("video_id", fields[1]), ("frame_id", fields[2])):
                if not value.isdigit():
                    return AvaFormatError(path, f"{name} {value!r} is not a non-negative integer", line=lineno)
    return AvaFormatError(path, "could not parse the frame list")


def read_frame_list(path: str | Path) -> FrameList:
    """Read a PySlowFast frame list (see the module docstring).

    Raises:
        InputFileError: missing file.
        AvaFormatError: wrong header, wrong column count, non-integer ids, or a video listing the
            same frame id twice -- naming the line.
    """
    path = check_readable(path, "frame list")
    with path.open("rb") as fh:
        header = fh.readline().decode("utf-8-sig", "replace").split()
    if not header:
        raise AvaFormatError(path, "file is empty", hint="expected the header " + " ".join(_HEADERS[0]))
    if tuple(header) not in _HEADERS:
        raise AvaFormatError(path, f"unexpected header {' '.join(header)!r}", line=1, hint="expected " + " ".join(_HEADERS[0]))
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=_NAMES, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=" ", ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={"original_video_id": pa.dictionary(pa.int32(), pa.string()), "video_id": pa.int64(),
                              "frame_id": pa.int64(), "path": pa.string(), "labels": pa.string()},
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        raise _scan_for_error(path) from None
    nulls = np.asarray(table.column("frame_id").is_null().to_numpy(zero_copy_only=False), dtype=bool)
    keep = len(nulls)
    while keep and nulls[keep - 1] and not str(table.column("original_video_id")[keep - 1].as_py() or "").strip():
        keep -= 1  # trailing blank lines are tolerated
    table = table.slice(0, keep)
    if table.column("video_id").null_count or table.column("frame_id").null_count:
        raise _scan_for_error(path)
    n = table.num_rows
    line = np.arange(2, n + 2)
    names = table.column("original_video_id").to_numpy(zero_copy_only=False).astype(str) if n else np.zeros(0, str)
    uniq, first, codes = np.unique(names, return_index=True, return_inverse=True)
    order = np.argsort(first)  # first-appearance order, as PySlowFast numbers videos
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    video_index = rank[codes.reshape(-1)].astype(np.int32)
    videos = uniq[order].astype(object)
    frame_id = table.column("frame_id").to_numpy()
    numeric_id = table.column("video_id").to_numpy()
    if (frame_id < 0).any():
        r = int(np.argmax(frame_id < 0))
        raise AvaFormatError(path, f"frame_id {frame_id[r]} is negative", line=int(line[r]))
    warnings: list[str] = []
    sort = np.lexsort((frame_id, video_index))
    v_sorted, f_sorted = video_index[sort], frame_id[sort]
    same_video = v_sorted[1:] == v_sorted[:-1]
    repeated = same_video & (f_sorted[1:] == f_sorted[:-1])
    if repeated.any():
        r = int(sort[int(np.argmax(repeated)) + 1])
        raise AvaFormatError(path, f"video {names[r]!r} lists frame_id {frame_id[r]} twice", line=int(line[r]))
    gaps = same_video & (f_sorted[1:] != f_sorted[:-1] + 1)
    if gaps.any():
        gap_videos = sorted({str(videos[v]) for v in v_sorted[1:][gaps]})
        warnings.append(f"{path}: frame ids are not contiguous in {len(gap_videos)} video(s), e.g. {gap_videos[0]!r}")
    inconsistent = np.zeros(len(videos), dtype=bool)
    if n:
        lo = np.full(len(videos), np.iinfo(np.int64).max)
        hi = np.full(len(videos), np.iinfo(np.int64).min)
        np.minimum.at(lo, video_index, numeric_id)
        np.maximum.at(hi, video_index, numeric_id)
        inconsistent = lo != hi
    if inconsistent.any():
        warnings.append(f"{path}: {int(inconsistent.sum())} video(s) have more than one numeric video_id (ignored; videos are numbered by first appearance)")
    return FrameList(
        videos=videos,
        video_index=video_index,
        frame_id=frame_id.astype(np.int64),
        path=table.column("path").to_numpy(zero_copy_only=False).astype(object),
        labels=table.column("labels").to_numpy(zero_copy_only=False).astype(object),
        source=str(path),
        warnings=warnings,
    )


def write_frame_list(path: str | Path, frames: FrameList) -> None:
    """Write ``frames`` in PySlowFast's layout (numeric video id = position in ``videos``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fh.write(" ".join(_HEADERS[0]) + "\n")
        for v, f, p, lab in zip(frames.video_index.tolist(), frames.frame_id.tolist(), frames.path.tolist(), frames.labels.tolist()):
            fh.write(f'{frames.videos[v]} {v} {f} {p} {lab if lab else chr(34) * 2}\n')
