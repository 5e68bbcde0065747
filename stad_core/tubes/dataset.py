"""A tube ground truth as per-frame AVA-style annotation files, so ingest/detect/extract/train apply.

Every ``frame_stride``-th frame of a video becomes a keyframe at ``(frame - 1) / fps`` seconds; each
ground-truth box there is a row ``video, t, x1, y1, x2, y2, action_id, person_id`` (normalised box,
``action_id = label index + 1``). Frames without any box get a box-less row, so the frames between
actions are keyframes too (a detector is run there and false positives count). Training CSVs leave
box-less rows out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stad_core.atomic import atomic_write_text
from stad_core.tubes.gt import TubeGroundTruth


def stad_video_id(name: str) -> str:
    """The stad video id of a dataset video name: its last path part (``basketball/v_x_c001`` ->
    ``v_x_c001``), the file's stem in the datasets' own folder layout (unique in all three)."""
    return name.rsplit("/", 1)[-1]


def frame_time(frame: int | np.ndarray, fps: float) -> float | np.ndarray:
    """Seconds of 1-based ``frame`` on the video's timeline (rounded to ms as keyframe keys are)."""
    return np.round((np.asarray(frame) - 1) / fps, 3)


def time_frame(t: float | np.ndarray, fps: float) -> np.ndarray:
    """1-based frame number of a keyframe time."""
    return np.rint(np.asarray(t, dtype=np.float64) * fps).astype(np.int64) + 1


@dataclass(frozen=True)
class AnnotationFiles:
    train_csv: str | None
    val_csv: str | None
    labelmap: str
    rows: dict[str, int]


def labelmap_text(labels: list[str]) -> str:
    return "".join(f'item {{\n  name: "{name}"\n  id: {i + 1}\n}}\n' for i, name in enumerate(labels))


def _rows(gt: TubeGroundTruth, video: str, fps: float, stride: int, margin: int, boxless: bool,
          person_ids: Mapping[int, list[int]] | None) -> list[tuple]:
    h, w = gt.resolution[video]
    n = gt.nframes[video]
    frames = [f for f in range(1 + margin, n - margin + 1) if (f - 1 - margin) % stride == 0]
    wanted = set(frames)
    by_frame: dict[int, list[tuple]] = {f: [] for f in frames}
    for label, tubes in sorted(gt.gttubes.get(video, {}).items()):
        for i, tube in enumerate(tubes):
            pid = person_ids[label][i] if person_ids is not None else label * 10_000 + i  # one id per tube
            for r in tube:
                f = int(r[0])
                if f in wanted:
                    box = np.clip(np.array([r[1] / w, r[2] / h, r[3] / w, r[4] / h]), 0.0, 1.0)
                    by_frame[f].append((video, float(frame_time(f, fps)), *np.round(box, 6).tolist(), label + 1, pid))
    out: list[tuple] = []
    for f in frames:
        if by_frame[f]:
            out.extend(sorted(by_frame[f], key=lambda r: (r[7], r[6])))
        elif boxless:
            out.append((video, float(frame_time(f, fps))))
    return out


def write_tube_annotations(
    gt: TubeGroundTruth, out_dir: str | Path, fps: Mapping[str, float], *, split: int = 0, frame_stride: int = 1,
    margin_frames: int = 0,
) -> AnnotationFiles:
    """``train.csv`` / ``val.csv`` (the pickle's test list) and ``label_map.pbtxt`` under ``out_dir``.

    The CSVs name videos by their stad ids (``stad_video_id``); ``fps`` is keyed by dataset name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    persons = gt.extra.get("actors")  # synthetic export: the true actor ids
    paths: dict[str, str | None] = {"train": None, "val": None}
    counts: dict[str, int] = {}
    for split_name, videos in (("train", gt.videos(split, "train")), ("val", gt.videos(split, "test"))):
        if not videos:
            continue
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        n = 0
        for v in videos:
            ids = persons.get(v) if isinstance(persons, dict) else None
            for row in _rows(gt, v, fps[v], frame_stride, margin_frames, split_name == "val", ids):
                writer.writerow((stad_video_id(row[0]), *row[1:]))
                n += 1
        path = out / f"{split_name}.csv"
        atomic_write_text(path, buf.getvalue())
        paths[split_name], counts[split_name] = str(path), n
    labelmap = out / "label_map.pbtxt"
    atomic_write_text(labelmap, labelmap_text(gt.labels))
    return AnnotationFiles(paths["train"], paths["val"], str(labelmap), counts)
