"""GPU scheduling for Prefect tasks.

A task that needs a GPU declares it (``submit_task(task, gpu=True, ...)`` at the call site and
``with gpu_device() as device:`` in its body). What that means depends on where it runs:

* **Dask task runner** — the submission carries the Dask resource annotation ``GPU=1``; each Dask
  worker advertises ``--resources GPU=1`` and owns one device through its own
  ``CUDA_VISIBLE_DEVICES``, so the scheduler never runs two GPU tasks on one worker. Before
  submitting, :func:`check_dask_gpus` verifies some worker has the resource: Dask would otherwise
  leave the tasks pending forever without an error.
* **Local (thread pool)** — the body takes a slot of the Prefect global concurrency limit
  ``stad-gpu`` (one slot per visible GPU; :func:`ensure_gpu_limit` creates or resizes it — a missing
  limit would only log a warning and not throttle) and a device index from an in-process pool.
* **No GPU** — no gating at all; the body gets ``device == "cpu"``.

``STAD_GPUS=<n>`` overrides the detected GPU count (``0`` forces CPU; tests use it to fake GPUs).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from stad_core.errors import StadError

GPU_LIMIT_NAME = "stad-gpu"
GPU_RESOURCE = "GPU"
GpuFallback = Literal["error", "cpu"]

log = logging.getLogger("stad.gpu")


def visible_gpus() -> int:
    """Number of GPUs this process may use (``STAD_GPUS`` wins over CUDA detection)."""
    forced = os.environ.get("STAD_GPUS")
    if forced is not None and forced.strip() != "":
        return max(0, int(forced))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but CPU-only images may strip it
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class GpuLease:
    """The device a GPU task body should use: ``"cuda:<i>"`` or ``"cpu"``; ``index`` is the slot."""

    device: str
    index: int | None
    gated_by: Literal["dask", "prefect-limit", "none"]


# ---------------------------------------------------------------------------------------------
# Local gating: Prefect global concurrency limit + in-process device pool


def ensure_gpu_limit(n_gpus: int | None = None, name: str = GPU_LIMIT_NAME) -> int:
    """Create or resize the global concurrency limit ``name`` to one slot per GPU.

    Returns the slot count. Failures (no reachable API) are logged, not raised: the flow then runs
    unthrottled rather than not at all, which matches what Prefect does for a missing limit.
    """
    n = visible_gpus() if n_gpus is None else n_gpus
    if n <= 0:
        return 0
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            try:
                current = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=n))
                return n
            if current.limit != n or not current.active:
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=n, active=True))
    except Exception as exc:  # noqa: BLE001 - a throttle we cannot set must not kill the run
        log.warning("could not create/resize concurrency limit %r (%s); GPU tasks are not throttled", name, exc)
    return n


class _DevicePool:
    """Hands out device indices 0..n-1 to concurrent task threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._size = -1
        self._free: queue.Queue[int] = queue.Queue()

    def _resize(self, n: int) -> None:
        with self._lock:
            if n != self._size:
                self._size = n
                self._free = queue.Queue()
                for i in range(n):
                    self._free.put(i)

    @contextmanager
    def take(self, n: int) -> Iterator[int]:
        self._resize(n)
        pool = self._free
        index = pool.get()
        try:
            yield index
        finally:
            pool.put(index)


_POOL = _DevicePool()


def on_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


@contextmanager
def gpu_device(limit_name: str = GPU_LIMIT_NAME) -> Iterator[GpuLease]:
    """Hold a GPU for the duration of the block (see module docstring for the three modes)."""
    if on_dask_worker():
        # The Dask scheduler already gave this worker's single GPU resource to us.
        yield GpuLease("cuda:0" if cuda_available() else "cpu", 0, "dask")
        return
    n = visible_gpus()
    if n <= 0:
        yield GpuLease("cpu", None, "none")
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(limit_name, occupy=1, strict=False):
        with _POOL.take(n) as index:
            yield GpuLease(f"cuda:{index}" if cuda_available() else "cpu", index, "prefect-limit")


# ---------------------------------------------------------------------------------------------
# Submission: Dask resource annotations


def using_dask_runner() -> bool:
    """True inside a flow whose task runner is prefect-dask's DaskTaskRunner."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.task_runner is None:
        return False
    return type(ctx.task_runner).__name__ == "DaskTaskRunner"


def submit_task(task: Any, *, gpu: bool = False, **parameters: Any) -> Any:
    """``task.submit(**parameters)``, annotated with ``GPU=1`` when it needs a GPU and runs on Dask."""
    if gpu and using_dask_runner():
        import dask

        with dask.annotate(resources={GPU_RESOURCE: 1}):
            return task.submit(**parameters)
    return task.submit(**parameters)


def dask_gpu_workers(address: str, timeout: float = 10.0) -> dict[str, float]:
    """``{worker address: GPU resource}`` of the Dask cluster at ``address``."""
    from distributed import Client

    try:
        with Client(address, timeout=timeout) as client:
            info = client.scheduler_info(n_workers=-1)
    except TypeError:  # older distributed without n_workers
        with Client(address, timeout=timeout) as client:
            info = client.scheduler_info()
    except OSError as exc:
        raise StadError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    workers = info.get("workers", {})
    return {addr: float(w.get("resources", {}).get(GPU_RESOURCE, 0)) for addr, w in workers.items()}


def check_dask_gpus(address: str, fallback: GpuFallback = "error") -> bool:
    """Whether GPU tasks may carry the ``GPU`` annotation on the cluster at ``address``.

    With no GPU worker, ``fallback="error"`` fails now with a clear message (instead of tasks that
    would wait forever) and ``fallback="cpu"`` returns False: GPU tasks then run unannotated on CPU.
    """
    workers = dask_gpu_workers(address)
    if any(v >= 1 for v in workers.values()):
        return True
    if fallback == "cpu":
        log.warning("no Dask worker at %s offers a %s resource: GPU tasks run on CPU workers", address, GPU_RESOURCE)
        return False
    raise StadError(
        f"no Dask worker at {address} offers a '{GPU_RESOURCE}' resource ({len(workers)} workers): "
        f"start GPU workers with `dask worker {address} --resources {GPU_RESOURCE}=1` "
        "(one per device, each with its own CUDA_VISIBLE_DEVICES), or pass gpu_fallback=cpu"
    )


def gpu_worker_specs(n_gpus: int, *, threads: int = 1, cpu_workers: int = 0) -> dict[str, dict[str, Any]]:
    """A ``distributed.SpecCluster`` worker spec: one Nanny per GPU pinned to its device.

    Each GPU worker advertises ``GPU=1`` and sees only its device (``CUDA_VISIBLE_DEVICES=i``);
    CPU workers see none: a single-machine multi-GPU cluster is ``SpecCluster(workers=gpu_worker_specs(n))``.
    """
    from distributed import Nanny

    specs: dict[str, dict[str, Any]] = {}
    for i in range(n_gpus):
        specs[f"gpu-{i}"] = {
            "cls": Nanny,
            "options": {"nthreads": threads, "resources": {GPU_RESOURCE: 1}, "env": {"CUDA_VISIBLE_DEVICES": str(i)}},
        }
    for i in range(cpu_workers):
        specs[f"cpu-{i}"] = {"cls": Nanny, "options": {"nthreads": threads, "env": {"CUDA_VISIBLE_DEVICES": ""}}}
    return specs
