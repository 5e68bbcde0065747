"""``verify_bank``: read every chunk of every complete video and check it against the spec."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stad_core.banks import ROW_KINDS, second_index
from stad_core.progress import ProgressFn, report
from storage.banks import ZarrBank


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one video."""

    video_id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.video_id}: {self.problem}"


def verify_video(bank: ZarrBank, video_id: str) -> list[str]:
    """Problems of one complete video (empty list = fine). Decompresses every chunk."""
    spec = bank.spec
    info = bank.video_info(video_id)
    arrays = dict(bank.arrays(video_id))
    problems: list[str] = []
    big_name = "features" if spec.kind in ROW_KINDS else "maps"
    expected = (
        {"features", "boxes", "scores", "timestamps", "person_ids", "second_offsets"}
        if spec.kind in ROW_KINDS
        else {"maps", "timestamps"}
    )
    missing = expected - set(arrays)
    if missing:
        return [f"missing arrays {sorted(missing)}"]
    for name, arr in sorted(arrays.items()):
        if arr.nchunks_initialized != arr.nchunks:
            problems.append(f"{name}: {arr.nchunks - arr.nchunks_initialized} of {arr.nchunks} chunks are missing")
    if problems:
        return problems
    big = arrays[big_name]
    n = info.rows
    if big.shape[0] != n:
        problems.append(f"{big_name} has {big.shape[0]} rows, attributes say {n}")
    if str(big.dtype) != spec.dtype:
        problems.append(f"{big_name} dtype {big.dtype} != spec dtype {spec.dtype}")
    if big.shape[1] != spec.feature_dim:
        problems.append(f"{big_name} has {big.shape[1]} channels, spec says {spec.feature_dim}")
    step = max(1, int(big.chunks[0]))
    for start in range(0, big.shape[0], step):  # one chunk at a time keeps memory flat
        block = big[start : start + step]
        if not np.all(np.isfinite(block)):
            problems.append(f"{big_name} rows {start}..{start + len(block) - 1} contain NaN/inf")
            break
    ts = arrays["timestamps"][...]
    if ts.shape != (n,):
        problems.append(f"timestamps have shape {ts.shape}, expected ({n},)")
    elif np.any(np.diff(ts) < 0):
        problems.append("timestamps are not sorted")
    if spec.kind not in ROW_KINDS or problems:
        return problems
    for name, shape in {"boxes": (n, 4), "scores": (n,), "person_ids": (n,)}.items():
        if arrays[name].shape != shape:
            problems.append(f"{name} has shape {arrays[name].shape}, expected {shape}")
    if problems:
        return problems
    boxes = arrays["boxes"][...]
    if n and (boxes.min() < -1e-3 or boxes.max() > 1 + 1e-3):
        problems.append("boxes are not normalised to [0, 1]")
    if n and np.any(boxes[:, 2] < boxes[:, 0]) | np.any(boxes[:, 3] < boxes[:, 1]):
        problems.append("boxes with x2 < x1 or y2 < y1")
    index = second_index(ts)
    offsets = arrays["second_offsets"][...]
    if not np.array_equal(offsets, index.offsets) or (n and info.first_second != index.first_second):
        problems.append("second_offsets do not match the timestamps")
    return problems


def verify_bank(bank: ZarrBank, *, on_progress: ProgressFn | None = None) -> list[Problem]:
    """Check every complete video; incomplete leftovers are not errors (see ``stale_versions``)."""
    videos = bank.videos()
    problems: list[Problem] = []
    for i, vid in enumerate(videos):
        try:
            problems += [Problem(vid, p) for p in verify_video(bank, vid)]
        except Exception as exc:  # any failure to decode is damage to report, not to crash on
            problems.append(Problem(vid, f"unreadable: {type(exc).__name__}: {exc}"))
        report(on_progress, i + 1, len(videos))
    return problems
