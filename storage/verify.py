"""Bank integrity: ``check_bank`` decodes every chunk of every complete video (checksums included)
and checks the contents against the spec; ``repair_videos`` deletes damaged videos so the stage
that wrote them redoes exactly those.

A full check reads each chunk on its own, so every damaged one is reported (bank, video, array,
chunk path), not just the first. ``quick=True`` checks metadata, that every chunk object exists
and the small arrays (timestamps, boxes, offsets), without decoding the features.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr
from zarr.errors import ChunkNotFoundError

from stad_core.banks import ROW_KINDS, BankError, second_index
from stad_core.progress import ProgressFn, report
from storage.banks import ZarrBank
from storage.codecs import has_checksum
from storage.reading import is_damage
from storage.uri import fs_for, join
from storage.workspace import STAGE_REF_FILE

_ROW_ARRAYS = {"features", "boxes", "scores", "timestamps", "person_ids", "second_offsets"}
_CONTEXT_ARRAYS = {"maps", "timestamps"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one video; ``array``/``chunk`` (its path in the bank) when one chunk is."""

    video_id: str
    problem: str
    array: str = ""
    chunk: str = ""

    def __str__(self) -> str:
        where = f"array {self.array}, chunk {self.chunk}: " if self.chunk else f"{self.array}: " if self.array else ""
        return f"video {self.video_id}: {where}{self.problem}"


@dataclass
class BankCheck:
    """What :func:`check_bank` found."""

    videos: int = 0  # complete videos checked
    chunks: int = 0  # chunks decoded (0 with quick=True)
    problems: list[Problem] = field(default_factory=list)
    no_checksums: list[str] = field(default_factory=list)  # videos with arrays written before checksums

    @property
    def damaged_videos(self) -> list[str]:
        return sorted({p.video_id for p in self.problems})


def _chunk_key(arr: Any, coords: tuple[int, ...]) -> str:
    return f"{arr.path}/{arr.metadata.encode_chunk_key(coords)}"


def _decode_all(arr: Any, name: str, video_id: str, big: bool) -> tuple[list[Problem], int, bool]:
    """Decode every chunk of ``arr`` on its own: (problems, chunks decoded, all values finite)."""
    strict = arr.with_config({"read_missing_chunks": False})
    missing: list[str] = []
    problems: list[Problem] = []
    finite = True
    grid = [range(n) for n in strict.cdata_shape]
    count = 0
    for coords in itertools.product(*grid):
        try:
            block = strict.get_block_selection(coords)
        except ChunkNotFoundError:
            missing.append(_chunk_key(arr, coords))
            continue
        except Exception as exc:
            if not is_damage(exc):
                raise
            key = _chunk_key(arr, coords)
            problems.append(Problem(video_id, f"unreadable ({type(exc).__name__}: {exc})", name, key))
            continue
        count += 1
        if big and finite and not np.all(np.isfinite(block)):
            finite = False
    problems += [Problem(video_id, f"chunk object missing ({len(missing)} of {strict.nchunks} {name} chunks missing)",
                         name, key) for key in missing]
    return problems, count, finite


def check_video(bank: ZarrBank, video_id: str, *, quick: bool = False) -> tuple[list[Problem], int, bool]:
    """Problems of one complete video, the chunks decoded, and whether every array has checksums."""
    spec = bank.spec
    info = bank.video_info(video_id)
    group = zarr.open_group(bank.store, path=f"videos/{video_id}/{info.version}", mode="r")
    expected = _ROW_ARRAYS if spec.kind in ROW_KINDS else _CONTEXT_ARRAYS
    big_name = "features" if spec.kind in ROW_KINDS else "maps"

    def problem(text: str, array: str = "", chunk: str = "") -> Problem:
        return Problem(video_id, text, array, chunk)

    arrays: dict[str, Any] = {}
    problems: list[Problem] = []
    for name in sorted(expected):
        try:
            arrays[name] = group[name]
        except KeyError:
            problems.append(problem(f"missing array {name!r}"))
        except Exception as exc:
            if not is_damage(exc):
                raise
            key = f"{group.path}/{name}/zarr.json"
            problems.append(problem(f"metadata unreadable ({type(exc).__name__}: {exc})", name, key))
    if problems:
        return problems, 0, True  # reported as damage, not as "no checksums"
    checksummed = all(has_checksum(a) for a in arrays.values())
    decoded = 0
    finite = True
    for name, arr in arrays.items():
        if quick:
            if arr.nchunks_initialized != arr.nchunks:
                problems.append(problem(
                    f"{arr.nchunks - arr.nchunks_initialized} of {arr.nchunks} chunks are missing", name))
            continue
        found, count, ok = _decode_all(arr, name, video_id, big=name == big_name)
        problems += found
        decoded += count
        finite = finite and ok
    if problems:
        return problems, decoded, checksummed
    problems += [problem(p) for p in _content_problems(bank, arrays, info, big_name, finite)]
    return problems, decoded, checksummed


def _content_problems(bank: ZarrBank, arrays: dict[str, Any], info: Any, big_name: str, finite: bool) -> list[str]:
    """Shapes, dtypes, finiteness (from the full decode), sorted timestamps, boxes, offsets."""
    spec = bank.spec
    problems: list[str] = []
    big = arrays[big_name]
    n = info.rows
    if big.shape[0] != n:
        problems.append(f"{big_name} has {big.shape[0]} rows, attributes say {n}")
    if str(big.dtype) != spec.dtype:
        problems.append(f"{big_name} dtype {big.dtype} != spec dtype {spec.dtype}")
    if big.shape[1] != spec.feature_dim:
        problems.append(f"{big_name} has {big.shape[1]} channels, spec says {spec.feature_dim}")
    if not finite:
        problems.append(f"{big_name} contains NaN/inf")
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


def check_bank(bank: ZarrBank, *, quick: bool = False, on_progress: ProgressFn | None = None) -> BankCheck:
    """Check every complete video (incomplete leftovers are not errors: see ``stale_versions``)."""
    videos = bank.videos()
    result = BankCheck(videos=len(videos))
    for i, vid in enumerate(videos):
        try:
            problems, decoded, checksummed = check_video(bank, vid, quick=quick)
        except Exception as exc:  # any other failure to read is damage to report, not to crash on
            if isinstance(exc, BankError) or is_damage(exc):
                problems, decoded, checksummed = [Problem(vid, f"unreadable: {type(exc).__name__}: {exc}")], 0, True
            else:
                raise
        result.problems += problems
        result.chunks += decoded
        if not checksummed:
            result.no_checksums.append(vid)
        report(on_progress, i + 1, len(videos))
    return result


def verify_bank(bank: ZarrBank, *, quick: bool = False, on_progress: ProgressFn | None = None) -> list[Problem]:
    """The problems :func:`check_bank` finds (empty list = the bank is fine)."""
    return check_bank(bank, quick=quick, on_progress=on_progress).problems


@dataclass(frozen=True)
class Repaired:
    """What :func:`repair_videos` did."""

    deleted: list[str]
    stage_record: str | None  # the stage record removed (the bank sits in that stage's output), if any


def stage_output_of(bank_uri: str) -> str | None:
    """The stage output folder holding the bank (``<ws>/<stage>/<hash>-<key>``), if it has a record."""
    parent = bank_uri.rstrip("/").rpartition("/")[0]
    if not parent:
        return None
    fs, path = fs_for(join(parent, STAGE_REF_FILE))
    return parent if fs.exists(path) else None


def repair_videos(bank: ZarrBank, video_ids: list[str]) -> Repaired:
    """Delete every version of ``video_ids`` so they are no longer complete, and un-mark the stage
    output the bank belongs to (remove its ``_stage.json``, as a forced run does first): the next
    plain run of that stage (extract, or acfb for an actor-context bank) then redoes exactly these
    videos -- its resume skips every video its bank(s) still list complete.

    Refuses (nothing deleted) when an id is not in the bank. Run it when no writer is active.
    """
    if bank.mode == "r":
        raise BankError(f"bank {bank.uri} is open read-only; open it with mode='a' to repair")
    present = set(bank.all_video_ids())
    unknown = [v for v in video_ids if v not in present]
    if unknown:
        raise BankError(f"not in bank {bank.uri}: {', '.join(map(repr, unknown))} (see `stad bank videos {bank.uri}`)")
    for vid in video_ids:
        bank.delete_video(vid)
    output = stage_output_of(bank.uri)
    if output is None:
        return Repaired(list(video_ids), None)
    record = join(output, STAGE_REF_FILE)
    fs, path = fs_for(record)
    fs.rm(path)
    return Repaired(list(video_ids), record)
