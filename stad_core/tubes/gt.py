"""The ground-truth tube file shared by MultiSports, UCF101-24 and JHMDB, read with a safe unpickler.

Layout of the pickle (a dict)::

    labels        list[str]                          class names; a class index is its position
    train_videos  list[list[str]]                    per split, the training videos (JHMDB has 3 splits)
    test_videos   list[list[str]]                    per split, the test videos
    nframes       dict[video, int]                   frames per video (frame numbers start at 1)
    resolution    dict[video, (height, width)]
    gttubes       dict[video, dict[label_index, list[ndarray [n, 5]]]]   frame, x1, y1, x2, y2 (pixels)

Only plain containers, numbers, strings and numpy arrays may appear in the file: the unpickler refuses
any other global, so a hostile file cannot run code. Python 2 pickles (the original UCF101-24/JHMDB
files) load through ``encoding="latin1"``.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stad_core.atomic import atomic_write_bytes
from stad_core.errors import InputFileError

# (module, name) pairs a tube pickle may reference: numpy array/scalar reconstruction only.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise InputFileError(
            self._path,
            f"refusing to load {module}.{name} from a pickle",
            hint="tube files may hold only dicts, lists, tuples, numbers, strings and numpy arrays",
        )


def safe_load_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` allowing only containers, scalars and numpy arrays (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found")
    try:
        with path.open("rb") as fh:
            return _SafeUnpickler(fh, path).load()  # type: ignore[arg-type]
    except InputFileError:
        raise
    except Exception as exc:  # truncated or not a pickle at all
        raise InputFileError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from exc


@dataclass
class TubeGroundTruth:
    """Ground-truth tubes of one dataset (see the module docstring for the fields)."""

    labels: list[str]
    train_videos: list[list[str]]
    test_videos: list[list[str]]
    nframes: dict[str, int]
    resolution: dict[str, tuple[int, int]]
    gttubes: dict[str, dict[int, list[np.ndarray]]]
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of the file, kept for round trips

    def videos(self, split: int = 0, which: str = "test") -> list[str]:
        """The test (or train) videos of ``split`` (0-based; MultiSports and UCF101-24 have one)."""
        lists = self.test_videos if which == "test" else self.train_videos
        if not 0 <= split < len(lists):
            raise IndexError(f"split {split} does not exist ({len(lists)} split(s) in the file)")
        return lists[split]

    def num_tubes(self, videos: list[str] | None = None) -> int:
        vids = self.gttubes if videos is None else videos
        return sum(len(t) for v in vids for t in self.gttubes.get(v, {}).values())

    def to_dict(self) -> dict[str, Any]:
        """The pickle layout (plain types and float32 arrays), as the public tools expect it."""
        return {
            **self.extra,
            "labels": list(self.labels),
            "train_videos": [list(v) for v in self.train_videos],
            "test_videos": [list(v) for v in self.test_videos],
            "nframes": dict(self.nframes),
            "resolution": {v: tuple(r) for v, r in self.resolution.items()},
            "gttubes": {v: {int(k): [np.asarray(t, dtype=np.float32) for t in ts] for k, ts in d.items()}
                        for v, d in self.gttubes.items()},
        }


def restrict_frames(gt: TubeGroundTruth, frames: dict[str, np.ndarray]) -> TubeGroundTruth:
    """``gt`` with each tube cut to the rows of the given frames (a video not in ``frames`` keeps all);
    for frame-mAP of a model that ran on every n-th frame only. Emptied tubes disappear."""
    tubes: dict[str, dict[int, list[np.ndarray]]] = {}
    for v, by_label in gt.gttubes.items():
        keep = frames.get(v)
        if keep is None:
            tubes[v] = by_label
            continue
        cut = {k: [t[np.isin(t[:, 0], keep)] for t in ts] for k, ts in by_label.items()}
        tubes[v] = {k: [t for t in ts if len(t)] for k, ts in cut.items() if any(len(t) for t in ts)}
    return TubeGroundTruth(gt.labels, gt.train_videos, gt.test_videos, gt.nframes, gt.resolution, tubes, gt.extra)


REQUIRED = ("labels", "nframes", "gttubes")


def parse_ground_truth(data: Any, path: str | Path = "<memory>") -> TubeGroundTruth:
    """Check the layout of an unpickled ground-truth dict and convert it; errors name the bad entry."""
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a dict at the top level, got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputFileError(path, f"missing key(s) {', '.join(missing)}",
                             hint="a tube ground-truth pickle has labels, train_videos, test_videos, nframes, "
                                  "resolution and gttubes")
    labels = data["labels"]
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise InputFileError(path, "'labels' must be a list of class names")

    def split_lists(key: str) -> list[list[str]]:
        value = data.get(key, [[]])
        if isinstance(value, dict):  # some exports key the splits by number
            value = [value[k] for k in sorted(value)]
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in value):
            raise InputFileError(path, f"'{key}' must be a list of per-split video lists")
        return [[str(v) for v in s] for s in value]

    train, test = split_lists("train_videos"), split_lists("test_videos")
    nframes_raw, tubes_raw = data["nframes"], data["gttubes"]
    if not isinstance(nframes_raw, dict) or not isinstance(tubes_raw, dict):
        raise InputFileError(path, "'nframes' and 'gttubes' must be dicts keyed by video")
    nframes = {str(v): int(n) for v, n in nframes_raw.items()}
    resolution_raw = data.get("resolution", {})
    if not isinstance(resolution_raw, dict):
        raise InputFileError(path, "'resolution' must be a dict video -> (height, width)")
    resolution = {str(v): (int(r[0]), int(r[1])) for v, r in resolution_raw.items()}
    gttubes: dict[str, dict[int, list[np.ndarray]]] = {}
    for v, by_label in tubes_raw.items():
        if not isinstance(by_label, dict):
            raise InputFileError(path, f"gttubes[{v!r}] must be a dict label_index -> list of tubes")
        if v not in nframes:
            raise InputFileError(path, f"gttubes has video {v!r} that is missing from nframes")
        out: dict[int, list[np.ndarray]] = {}
        for k, tubes in by_label.items():
            k = int(k)
            if not 0 <= k < len(labels):
                raise InputFileError(path, f"gttubes[{v!r}] has label index {k} outside 0..{len(labels) - 1}")
            arrs = []
            for i, tube in enumerate(tubes):
                arr = np.asarray(tube, dtype=np.float64)
                if arr.ndim != 2 or arr.shape[1] < 5 or len(arr) == 0:
                    raise InputFileError(path, f"gttubes[{v!r}][{k}][{i}] must be an [n, 5] array "
                                               f"(frame, x1, y1, x2, y2), got shape {arr.shape}")
                frames = arr[:, 0]
                if np.any(np.diff(frames) <= 0):
                    raise InputFileError(path, f"gttubes[{v!r}][{k}][{i}]: frame numbers must increase")
                if frames[0] < 1 or frames[-1] > nframes[v]:
                    raise InputFileError(path, f"gttubes[{v!r}][{k}][{i}]: frames {int(frames[0])}..{int(frames[-1])}"
                                               f" outside 1..{nframes[v]}")
                arrs.append(arr[:, :5])
            out[k] = arrs
        gttubes[str(v)] = out
    for split in test:
        unknown = [v for v in split if v not in nframes]
        if unknown:
            raise InputFileError(path, f"test video {unknown[0]!r} has no entry in nframes "
                                       f"({len(unknown)} such video(s))")
    extra = {k: v for k, v in data.items() if k not in (*REQUIRED, "train_videos", "test_videos", "resolution")}
    return TubeGroundTruth(list(labels), train, test, nframes, resolution, gttubes, extra)


def load_ground_truth(path: str | Path) -> TubeGroundTruth:
    """Read a MultiSports / UCF101-24 / JHMDB ground-truth pickle safely and check its layout."""
    return parse_ground_truth(safe_load_pickle(path), path)


def save_ground_truth(gt: TubeGroundTruth, path: str | Path) -> None:
    """Write ``gt`` in the shared pickle layout (readable by the public evaluation code)."""
    atomic_write_bytes(Path(path), pickle.dumps(gt.to_dict(), protocol=4))
