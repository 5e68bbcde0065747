"""A small per-video stage used to exercise the generic resume machinery.

"Videos" are files in a folder; the stage writes one JSON output per video (a digest of the file
and the config's salt), optionally slowly, so tests can kill a run half-way.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

from prefect import flow

from flows.runtime import make_video_task, map_videos, summarise
from flows.workspace import StageRef, Workspace, fingerprint_paths
from stad_core.config import StageConfig


class DigestConfig(StageConfig):
    videos: str
    salt: str = "a"
    seconds_per_video: float = 0.0


def digest_video(*, video_id: str, stage_uri: str, device: str, videos: str, salt: str, seconds: float) -> dict[str, int]:
    data = (Path(videos) / f"{video_id}.bin").read_bytes()
    time.sleep(seconds)
    out = Path(stage_uri) / "videos" / f"{video_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"video": video_id, "sha": hashlib.sha256(salt.encode() + data).hexdigest(), "device": device}))
    return {"bytes": len(data)}


digest_task = make_video_task(digest_video, name="digest-video", gpu=True)


@flow(name="digest")
def digest_flow(config: DigestConfig, workspace: str, force: bool = False) -> StageRef:
    ws = Workspace(workspace)
    planned = ws.plan("digest", config, inputs={"videos": fingerprint_paths([config.videos])})
    done = ws.load_complete(planned)
    if done is not None and not force:
        return replace(done, reused=True)
    ws.begin(planned, force=force)
    ids = sorted(p.stem for p in Path(config.videos).glob("*.bin"))
    results = map_videos(
        digest_task, ids, stage="digest", stage_uri=planned.uri, config_hash=planned.config_hash,
        code_version=planned.code_version, inputs=planned.inputs, force=force, gpu=True,
        params={"videos": config.videos, "salt": config.salt, "seconds": config.seconds_per_video},
    )
    return ws.commit(replace(planned, counts=summarise(results)))


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


def hold_gpu(*, video_id: str, stage_uri: str, device: str, seconds: float) -> dict[str, int]:
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


hold_gpu_task = make_video_task(hold_gpu, name="hold-gpu", gpu=True)


class HoldConfig(StageConfig):
    videos: int = 6
    seconds: float = 0.3


@flow(name="hold-gpu")
def hold_gpu_flow(config: HoldConfig, workspace: str, force: bool = True) -> StageRef:
    ws = Workspace(workspace)
    planned = ws.plan("hold", config)
    ws.begin(planned, force=force)
    results = map_videos(
        hold_gpu_task, [f"v{i}" for i in range(config.videos)], stage="hold", stage_uri=planned.uri,
        config_hash=planned.config_hash, code_version=planned.code_version, inputs={}, force=force, gpu=True,
        params={"seconds": config.seconds},
    )
    return ws.commit(replace(planned, counts=summarise(results)))


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
