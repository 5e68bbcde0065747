"""GPU scheduling: Dask resources (one GPU task per worker), the local Prefect limit, fail-fast checks.

The GPUs are fake (a ``GPU`` resource / ``STAD_GPUS``): what is tested is the scheduling, which is
the same with real devices.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, Scheduler, SpecCluster, get_worker

from flows.gpu import GPU_LIMIT_NAME, check_dask_gpus, ensure_gpu_limit, gpu_worker_specs
from stad_core.errors import StadError
from stage_fixture import HoldConfig, hold_gpu_flow, overlaps, read_spans


def _span(seconds: float) -> dict[str, object]:
    start = time.monotonic()
    time.sleep(seconds)
    return {"worker": get_worker().address, "start": start, "end": time.monotonic()}


@pytest.fixture(scope="module")
def fake_gpu_cluster():
    # Two workers, two threads each: without the resource, one worker would run two tasks at once.
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False, resources={"GPU": 1},
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield cluster, client


def test_dask_gpu_resource_never_shares_a_worker(fake_gpu_cluster) -> None:
    cluster, client = fake_gpu_cluster
    gated = client.gather([client.submit(_span, 0.3, pure=False, resources={"GPU": 1}) for _ in range(8)])
    assert overlaps(gated) == 0
    assert len({s["worker"] for s in gated}) == 2  # both GPUs were used
    # Control: the same tasks without the annotation do overlap on a worker (the test can fail).
    free = client.gather([client.submit(_span, 0.3, pure=False) for _ in range(8)])
    assert overlaps(free) > 0


def test_check_dask_gpus(fake_gpu_cluster) -> None:
    cluster, _ = fake_gpu_cluster
    assert check_dask_gpus(cluster.scheduler_address) is True
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cpu_only:
        with pytest.raises(StadError, match="no Dask worker .* offers a 'GPU' resource"):
            check_dask_gpus(cpu_only.scheduler_address)
        assert check_dask_gpus(cpu_only.scheduler_address, fallback="cpu") is False


def test_gpu_worker_specs_pin_one_device_per_worker() -> None:
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    with SpecCluster(workers=gpu_worker_specs(2, cpu_workers=1), scheduler=scheduler) as cluster, Client(cluster) as client:
        client.wait_for_workers(3, timeout=120)
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
        resources = {w["name"]: w["resources"] for w in client.scheduler_info()["workers"].values()}
    assert sorted(seen.values()) == ["", "0", "1"]
    assert resources == {"gpu-0": {"GPU": 1}, "gpu-1": {"GPU": 1}, "cpu-0": {}}


def test_prefect_dask_runner_honours_gpu_annotation(prefect_harness: str, tmp_path: Path, fake_gpu_cluster) -> None:
    from prefect_dask import DaskTaskRunner

    cluster, _ = fake_gpu_cluster
    flow = hold_gpu_flow.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    ref = flow(HoldConfig(videos=4, seconds=0.3), str(tmp_path))
    spans = read_spans(ref)
    assert ref.counts["ran"] == 4 and len(spans) == 4
    assert all(s["worker"] != "local" for s in spans)  # ran on the Dask workers
    assert overlaps(spans) == 0


def test_local_gpu_limit_serialises_gpu_tasks(prefect_harness: str, tmp_path: Path, monkeypatch) -> None:
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("STAD_GPUS", "1")  # one fake GPU: at most one GPU task at a time
    assert ensure_gpu_limit() == 1
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(GPU_LIMIT_NAME).limit == 1
    ref = hold_gpu_flow(HoldConfig(videos=4, seconds=0.3), str(tmp_path))
    spans = read_spans(ref)
    assert len(spans) == 4 and {s["worker"] for s in spans} == {"local"}
    assert overlaps(spans) == 0
    assert {s["device"] for s in spans} == {"cpu"}  # no CUDA here: the slot still gates, work runs on CPU


def test_no_gpu_runs_ungated_on_cpu(prefect_harness: str, tmp_path: Path, no_gpus: None) -> None:
    ref = hold_gpu_flow(HoldConfig(videos=4, seconds=0.5), str(tmp_path))
    spans = read_spans(ref)
    assert {s["device"] for s in spans} == {"cpu"}
    assert overlaps(spans) > 0  # CPU tasks are not serialised by the GPU limit
