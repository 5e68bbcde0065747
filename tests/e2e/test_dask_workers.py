"""Stages on real Dask worker processes: a `dask scheduler` and two `dask worker --resources GPU=1`
processes on loopback (each with its own scratch folder, whose spill directory is named storage/),
a real Prefect server, and `stad run ... --dask` from the command line.

Asserted: the per-video tasks ran in the worker processes (the done markers record host:pid and
times), no worker ran two GPU tasks at once, the banks equal a local run's bit for bit, and losing
workers mid-run either finishes on the others or fails with a clear error in bounded time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from e2e_lib import BIN, free_port, prefect_server, start, stop, wait_for

from stad_core.stage_configs import demo_config

pytestmark = pytest.mark.slow


def _tiny_pipeline() -> dict[str, Any]:
    base = demo_config("tiny", videos=4, seconds=12)
    config = base.model_copy(update={
        "finetune": base.finetune.model_copy(update={
            "max_clips": 8, "train": base.finetune.train.model_copy(update={"batch_size": 4})}),
        "stop_after": "extract",
    })
    return config.model_dump(mode="json")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from flows.gpu import dask_gpu_workers

    tmp = tmp_path_factory.mktemp("dask")
    with prefect_server(tmp) as (api, env, server, server_log):
        # One intra-op thread everywhere: CPU kernels sum in a thread-count dependent order, and the
        # banks are compared bit for bit. A short grace period for lost workers keeps the test fast.
        env = {**env, "OMP_NUM_THREADS": "1", "STAD_DASK_LOST_SECONDS": "10", "PREFECT_LOGGING_LEVEL": "INFO"}
        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        logs = [tmp / "scheduler.log"]
        procs = [start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                        "--no-dashboard"], logs[0], env)]
        workers = []
        for i in range(2):
            home = tmp / f"worker{i}"
            (home / "storage").mkdir(parents=True)  # a storage/ folder where the worker runs, as Dask's spill
            logs.append(tmp / f"worker{i}.log")
            # No nanny: a killed worker stays dead (a nanny would restart it).
            workers.append(start([str(BIN / "dask"), "worker", address, "--nthreads", "2", "--resources", "GPU=1",
                                  "--name", f"gpu-{i}", "--local-directory", str(home), "--no-dashboard",
                                  "--no-nanny"], logs[-1], env, cwd=home))
        procs += workers
        try:
            wait_for(lambda: len(dask_gpu_workers(address)) == 2, 90, "two Dask workers", procs, logs)
            yield {"address": address, "env": env, "workers": workers, "logs": logs, "tmp": tmp}
        finally:
            for proc in reversed(procs):
                stop(proc)


def _stad(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "stad"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _markers(ws: Path, stage: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(ws.glob(f"{stage}/*/_done/*.json"))]


def _bank(ws: Path) -> dict[str, dict[str, np.ndarray]]:
    from storage import open_reader

    [uri] = [str(p) for p in ws.glob("extract/*/long_term.zarr")]
    bank = open_reader(uri)
    return {v: {"features": np.asarray(bank.read_video(v).features), "boxes": bank.read_video(v).boxes}
            for v in bank.videos()}


def _same_banks(a: Path, b: Path) -> None:
    left, right = _bank(a), _bank(b)
    assert sorted(left) == sorted(right) and len(left) == 4
    for video in left:
        for name in left[video]:
            np.testing.assert_array_equal(left[video][name], right[video][name], err_msg=f"{video}.{name}")


def _worker_pids(cluster: dict[str, Any]) -> set[int]:
    return {proc.pid for proc in cluster["workers"]}


def test_pipeline_and_extract_run_on_worker_processes(cluster: dict[str, Any], tmp_path: Path) -> None:
    env, address = cluster["env"], cluster["address"]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_tiny_pipeline()))
    local, on_dask = tmp_path / "local", tmp_path / "dask"

    started = time.perf_counter()
    run = _stad(["run", "pipeline", "-c", str(config), "-w", str(local)], env, tmp_path)
    local_s = time.perf_counter() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    local_pids = {int(m["worker"].split(":")[1]) for m in _markers(local, "extract")}
    assert not local_pids & _worker_pids(cluster)  # the thread pool ran them in the CLI's own process

    started = time.perf_counter()
    run = _stad(["run", "pipeline", "-c", str(config), "-w", str(on_dask), "--dask", address], env, tmp_path)
    dask_s = time.perf_counter() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + cluster["logs"][1].read_text()[-3000:]

    # Every per-video task of detect and extract ran in a worker process, and both workers took part.
    markers = _markers(on_dask, "detect") + _markers(on_dask, "extract")
    pids = {int(m["worker"].split(":")[1]) for m in markers}
    assert len(markers) == 8 and pids <= _worker_pids(cluster) and len(pids) == 2, markers
    # GPU tasks (extract) never overlapped on one worker (each offers GPU=1 but runs 2 threads).
    extract = _markers(on_dask, "extract")
    for pid in pids:
        spans = sorted((m["started"], m["finished"]) for m in extract if m["worker"].endswith(f":{pid}"))
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    _same_banks(local, on_dask)

    # The extract stage alone on the cluster (forced: every video recomputed there) gives the same bank.
    extract_cfg = tmp_path / "extract.yaml"
    extract_cfg.write_text(yaml.safe_dump(_tiny_pipeline()["extract"]))
    run = _stad(["run", "extract", "-c", str(extract_cfg), "-w", str(on_dask), "--dask", address, "--force"],
                env, tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert {int(m["worker"].split(":")[1]) for m in _markers(on_dask, "extract")} <= _worker_pids(cluster)
    _same_banks(local, on_dask)
    cluster["workspace"] = on_dask  # the next tests extract again there
    print(f"\n[timing] tiny pipeline up to extract: local {local_s:.1f} s, two Dask workers {dask_s:.1f} s")


def _extract_while(cluster: dict[str, Any], tmp_path: Path, kill: list[subprocess.Popen[bytes]], num_frames: int
                   ) -> tuple[subprocess.Popen[bytes], Path, float]:
    """Start an extract with a new identity on the cluster in the first test's workspace, SIGKILL
    ``kill`` once its first video is done, and wait for the command to end: (it, its log, seconds)."""
    ws = cluster.get("workspace")
    assert ws is not None, "runs after test_pipeline_and_extract_run_on_worker_processes (same module)"
    slow = {**_tiny_pipeline()["extract"], "num_frames": num_frames, "batch_size": 2}
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(yaml.safe_dump(slow))
    log = tmp_path / "extract.log"
    proc = start([str(BIN / "stad"), "run", "extract", "-c", str(cfg), "-w", str(ws), "--dask", cluster["address"]],
                 log, cluster["env"], cwd=tmp_path)
    before = set(ws.glob("extract/*/_done/*.json"))
    wait_for(lambda: bool(set(ws.glob("extract/*/_done/*.json")) - before), 300, "the first video of the run",
             [proc], [log])
    for worker in kill:
        worker.send_signal(signal.SIGKILL)
    started = time.monotonic()
    try:
        proc.wait(timeout=240)
    finally:
        stop(proc)
    return proc, log, time.monotonic() - started


def test_losing_one_worker_finishes_on_the_other(cluster: dict[str, Any], tmp_path: Path) -> None:
    proc, log, seconds = _extract_while(cluster, tmp_path, cluster["workers"][:1], num_frames=24)
    assert proc.returncode == 0, log.read_text()[-4000:]
    assert "videos 4" in log.read_text()
    print(f"\n[timing] one worker killed: the run finished on the other {seconds:.1f} s later")


def test_losing_every_worker_is_a_clear_error_in_bounded_time(cluster: dict[str, Any], tmp_path: Path) -> None:
    alive = [w for w in cluster["workers"] if w.poll() is None]
    proc, log, seconds = _extract_while(cluster, tmp_path, alive, num_frames=20)
    text = log.read_text()
    assert proc.returncode != 0 and seconds < 120, text[-4000:]
    assert "no Dask worker with a GPU resource is left" in text, text[-4000:]
