"""A small per-video stage used to exercise the generic resume machinery.

"Videos" are files in a folder; the stage writes one JSON output per video (a digest of the file
and the config's salt), optionally slowly, so tests can kill a run half-way.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from prefect import flow

from flows.stage_flow import run_stage_flow
from stad_core.config import StageConfig
from storage.stages import Stage, StagePlan, VideoWork
from storage.workspace import StageRef, Workspace, fingerprint_paths


class DigestConfig(StageConfig):
    videos: str
    salt: str = "a"
    seconds_per_video: float = 0.0


def digest_video(*, video_id: str, stage_uri: str, device: str, force: bool, videos: str, salt: str,
                 seconds: float) -> dict[str, int]:
    data = (Path(videos) / f"{video_id}.bin").read_bytes()
    time.sleep(seconds)
    out = Path(stage_uri) / "videos" / f"{video_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"video": video_id, "sha": hashlib.sha256(salt.encode() + data).hexdigest(), "device": device}))
    return {"bytes": len(data)}


def _prepare_digest(ws: Workspace, config: DigestConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ref = ws.plan("digest", config, inputs={"videos": fingerprint_paths([config.videos])})
    ids = sorted(p.stem for p in Path(config.videos).glob("*.bin"))
    return StagePlan(ref, config, upstream, tuple(VideoWork(i) for i in ids),
                     shared={"videos": config.videos, "salt": config.salt, "seconds": config.seconds_per_video})


DIGEST = Stage("digest", DigestConfig, "digest every file", upstream=(), gpu=True, prepare=_prepare_digest,
               video=digest_video)


@flow(name="digest")
def digest_flow(config: DigestConfig, workspace: str, force: bool = False) -> StageRef:
    return run_stage_flow(DIGEST, config, workspace, force)


def make_videos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"vid{i:02d}.bin").write_bytes(bytes([i]) * (100 + i))
    return folder


if __name__ == "__main__":  # used by the kill -9 test: python stage_fixture.py VIDEOS WORKSPACE SECONDS
    import sys

    from prefect.task_runners import ThreadPoolTaskRunner

    cfg = DigestConfig(videos=sys.argv[1], seconds_per_video=float(sys.argv[3]))
    digest_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))(cfg, sys.argv[2])


# --- GPU scheduling probe: each "video" holds the GPU for a while and records where and when.


def hold_gpu(*, video_id: str, stage_uri: str, device: str, force: bool, seconds: float) -> dict[str, int]:
    from flows.gpu import on_dask_worker

    worker = "local"
    if on_dask_worker():
        from distributed import get_worker

        worker = get_worker().address
    start = time.monotonic()
    time.sleep(seconds)
    end = time.monotonic()
    out = Path(stage_uri) / "spans" / f"{video_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"worker": worker, "start": start, "end": end, "device": device}))
    return {"held": 1}


class HoldConfig(StageConfig):
    videos: int = 6
    seconds: float = 0.3


def _prepare_hold(ws: Workspace, config: HoldConfig, upstream: dict[str, StageRef]) -> StagePlan:
    return StagePlan(ws.plan("hold", config), config, upstream,
                     tuple(VideoWork(f"v{i}") for i in range(config.videos)), shared={"seconds": config.seconds})


HOLD = Stage("hold", HoldConfig, "hold a GPU per video", upstream=(), gpu=True, prepare=_prepare_hold, video=hold_gpu)


@flow(name="hold-gpu")
def hold_gpu_flow(config: HoldConfig, workspace: str, force: bool = True) -> StageRef:
    return run_stage_flow(HOLD, config, workspace, force)


def read_spans(ref: StageRef) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((Path(ref.uri) / "spans").glob("*.json"))]


def overlaps(spans: list[dict[str, object]]) -> int:
    """Number of pairs of spans on the same worker that overlap in time."""
    count = 0
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            if a["worker"] == b["worker"] and a["start"] < b["end"] and b["start"] < a["end"]:  # type: ignore[operator]
                count += 1
    return count
