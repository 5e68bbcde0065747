"""infer flow: a model bundle on new videos (logic: ``storage.stages.infer``), one task per video.

As a deployment it watches a folder of the shared workspace: ``<workspace>/bundle`` (written by
``stad export``) on ``<workspace>/inbox/*`` -> ``<workspace>/infer/`` (CSV, tracks JSON, MP4 per
video). Finished videos are skipped on the next run, so a schedule only works on new arrivals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.gpu import gpu_device
from flows.registry import Settings, resolve_config
from flows.runner import default_task_runner
from stad_core.errors import StadError
from storage.stages.infer import InferConfig, InferFailure, InferResult, Models, find_videos, infer_video, video_id_for
from storage.stages.base import model_slot
from storage.workspace import StageRef

_MODELS: dict[tuple[str, str], Models] = {}  # per worker process: the bundle's models load once


@task(name="infer-video", task_run_name="infer[{path.name}]", cache_policy=NO_CACHE, persist_result=False)
def infer_task(bundle: str, path: Path, out: str, config: InferConfig, force: bool, gpu: bool) -> dict[str, Any]:
    from storage.bundle import load_bundle

    def run(device: str) -> InferResult:
        key = (bundle, device)
        if key not in _MODELS:
            _MODELS[key] = Models(load_bundle(bundle), device)
        return infer_video(_MODELS[key], path, out, config, force=force)

    if gpu:
        with gpu_device() as held:
            result = run(held.device)
    else:
        with model_slot("cpu"):  # one CPU forward at a time per process, like the stages
            result = run("cpu")
    return {"video": result.video_id, "csv": str(result.csv), "tracks": str(result.tracks),
            "mp4": str(result.mp4) if result.mp4 else None, "skipped": result.skipped, "actors": result.actors}


@flow(name="infer", log_prints=True, task_runner=default_task_runner())
def infer_flow(
    config: Settings[InferConfig] = None,
    workspace: str = "workspace",
    force: bool = False,
    config_file: str | None = None,
    bundle: str | None = None,
    videos: list[str] | None = None,
    out: str | None = None,
    gpu: bool = False,
) -> StageRef:
    """Run ``bundle`` (default ``<workspace>/bundle``) on ``videos`` (files or folders; default
    ``<workspace>/inbox``), writing to ``out`` (default ``<workspace>/infer``). Unreadable videos are
    reported and the others still run; the flow fails at the end if any did. Returns a record of
    the output folder (``StageRef``-shaped, for `stad run`'s table; not a workspace stage output)."""
    from storage.bundle import load_bundle

    settings = resolve_config("infer", config, config_file)
    root = Path(workspace)
    bundle = bundle or str(root / "bundle")
    checked = load_bundle(bundle)  # refuse a bad bundle before any task starts
    target = out or str(root / "infer")
    files = find_videos(videos or [root / "inbox"])
    futures = [(p, infer_task.submit(bundle, p, target, settings, force, gpu)) for p in files]
    done, failed = [], []
    for path, future in futures:
        try:
            done.append(future.result())
        except StadError as exc:
            failed.append(InferFailure(path, str(exc)))
            print(f"failed: {exc}")
    if failed:
        raise StadError(f"{len(failed)} of {len(files)} videos failed: " + "; ".join(f.reason for f in failed))
    counts = {"videos": len(done), "ran": sum(not d["skipped"] for d in done),
              "skipped": sum(d["skipped"] for d in done), "actors": sum(d["actors"] for d in done)}
    return StageRef(stage="infer", uri=str(Path(target).resolve()), config_hash=settings.config_hash(),
                    key=checked.config_hash, code_version=checked.manifest["code_version"], counts=counts,
                    inputs={video_id_for(p): str(p) for p in files})


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main("infer")
