"""Per-video resume: the stage's own output is the cache.

The unit of resume is the video. A per-video task writes the video's outputs completely, then a
small *done marker* ``<stage uri>/_done/<video id>.json`` holding the work key — (video id, input
hashes, config hash, code version) — and a few counts. A re-run skips a video whose marker carries
the same key. Because the marker lives next to the data and is written last:

* a ``kill -9`` mid-run leaves no marker for the interrupted video, so the re-run redoes exactly that
  video (writers overwrite, never append) and the result equals an uninterrupted run;
* Prefect's result store and cache are not needed (and not used: a deleted Prefect database, a new
  flow run id or another machine change nothing);
* ``force=True`` ignores markers and recomputes.

Stages whose storage has its own completeness flag (a zarr bank's per-video ``complete`` attribute)
pass ``is_complete`` so the bank stays the single source of truth.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.leases import holding, try_acquire
from storage.uri import fs_for, join
from storage.workspace import digest, read_text, write_text

DONE_DIR = "_done"


@dataclass(frozen=True)
class WorkKey:
    """Identity of one unit of per-video work; equal keys mean the stored output is still valid."""

    video_id: str
    config_hash: str
    code_version: str
    inputs: Mapping[str, str] = field(default_factory=dict)  # e.g. {"ingest": <StageRef.key>}

    @property
    def hash(self) -> str:
        return digest("video-work", self.video_id, self.config_hash, self.code_version, dict(sorted(self.inputs.items())))


@dataclass(frozen=True)
class VideoResult:
    """What a per-video task returns to the flow (never the data itself)."""

    video_id: str
    skipped: bool
    counts: dict[str, int] = field(default_factory=dict)


def _marker_uri(stage_uri: str, video_id: str) -> str:
    # Video ids may contain characters that are awkward in paths on some stores.
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in video_id)
    suffix = "" if safe == video_id else "-" + digest(video_id)[:8]
    return join(stage_uri, DONE_DIR, f"{safe}{suffix}.json")


def read_marker(stage_uri: str, video_id: str) -> dict[str, Any] | None:
    uri = _marker_uri(stage_uri, video_id)
    fs, path = fs_for(uri)
    if not fs.exists(path):
        return None
    try:
        return json.loads(read_text(uri))
    except ValueError:
        return None  # a torn marker is no marker: the video is redone


def is_done(stage_uri: str, key: WorkKey, is_complete: Callable[[str], bool] | None = None) -> dict[str, int] | None:
    """Counts stored for ``key`` if its video is complete with the same key, else None."""
    marker = read_marker(stage_uri, key.video_id)
    if marker is None or marker.get("key") != key.hash:
        return None
    if is_complete is not None and not is_complete(key.video_id):
        return None
    return {str(k): int(v) for k, v in marker.get("counts", {}).items()}


def mark_done(stage_uri: str, key: WorkKey, counts: Mapping[str, int], *, started: float | None = None) -> None:
    """Record ``key``'s video as complete. Call only after all of its outputs are written.

    The marker also says where and when the work ran (``host:pid``, start and end epoch seconds):
    what a cluster run can be audited by."""
    payload = {"video_id": key.video_id, "key": key.hash, "counts": dict(counts), "code_version": key.code_version,
               "worker": f"{socket.gethostname()}:{os.getpid()}", "started": started, "finished": time.time()}
    write_text(_marker_uri(stage_uri, key.video_id), json.dumps(payload, sort_keys=True))


def clear_marker(stage_uri: str, video_id: str) -> None:
    fs, path = fs_for(_marker_uri(stage_uri, video_id))
    if fs.exists(path):
        fs.rm(path)


def run_video(
    work: Callable[[], Mapping[str, int]],
    stage_uri: str,
    key: WorkKey,
    *,
    force: bool = False,
    is_complete: Callable[[str], bool] | None = None,
    wait: bool = True,
    poll: float = 0.5,
) -> VideoResult | None:
    """Skip ``key``'s video if complete (unless ``force``), else run ``work`` and mark it done.

    The work runs under the video's lease (``storage.leases``): when another live run holds it, this
    one waits for that run's done marker (``wait``) or returns None at once (``wait=False``, so a
    caller can do other videos first). Each video is computed once however many runs share a
    workspace.
    """
    while True:
        if not force:
            counts = is_done(stage_uri, key, is_complete)
            if counts is not None:
                return VideoResult(key.video_id, skipped=True, counts=counts)
        if try_acquire(stage_uri, key.video_id):
            with holding(stage_uri, key.video_id):
                if not force:  # another run may have finished it between the check and the lease
                    counts = is_done(stage_uri, key, is_complete)
                    if counts is not None:
                        return VideoResult(key.video_id, skipped=True, counts=counts)
                # Drop a stale marker first: a crash inside ``work`` must not leave an old "done" behind.
                clear_marker(stage_uri, key.video_id)
                started = time.time()
                counts = {str(k): int(v) for k, v in dict(work()).items()}
                mark_done(stage_uri, key, counts, started=started)
                return VideoResult(key.video_id, skipped=False, counts=counts)
        if not wait:
            return None
        force = False  # the holder computes it: what it writes is this run's result too
        time.sleep(poll)
