"""A Dask cluster that really runs stad's tasks: checked before work is sent, watched while it runs.

* ``check_worker_imports``: every worker must import the project's packages (``stad_core``,
  ``storage``, ``flows``) as regular packages. A Dask worker puts its scratch folder first on
  ``sys.path``, and that folder holds a ``storage/`` directory (Dask's spill store): with an
  import-hook editable install, Python then takes that directory for the ``storage`` package and
  every task dies with ``cannot import name ... from 'storage' (unknown location)``.
* ``await_result``: waits for a task while watching the cluster. When no worker that could run the
  task is left (all died, or none offers the ``GPU`` resource any more), Dask would wait forever;
  this raises a clear error after ``STAD_DASK_LOST_SECONDS`` (default 20) instead.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

from flows.gpu import GPU_RESOURCE
from stad_core.errors import StadError

PACKAGES = ("stad_core", "storage", "flows")


def _package_origins() -> dict[str, str | None]:
    """Runs on each worker: where each project package is imported from (None: not a regular package)."""
    import importlib
    import sys

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            module = sys.modules.get(name) or importlib.import_module(name)
            out[name] = getattr(module, "__file__", None)
        except Exception as exc:  # noqa: BLE001 - reported per worker
            out[name] = f"!{type(exc).__name__}: {exc}"
    return out


@lru_cache(maxsize=8)
def check_worker_imports(address: str) -> int:
    """Raise a StadError naming the worker and the fix if a worker cannot import the project;
    returns the number of workers checked (once per address and process)."""
    from distributed import Client

    try:
        with Client(address, timeout=10) as client:
            origins: dict[str, dict[str, str | None]] = client.run(_package_origins)
    except OSError as exc:
        raise StadError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    for worker, found in sorted(origins.items()):
        bad = {name: where for name, where in found.items() if where is None or where.startswith("!")}
        if bad:
            what = "; ".join(f"{name}: {where or 'a namespace package (a folder of that name shadows it)'}"
                             for name, where in bad.items())
            raise StadError(
                f"Dask worker {worker} cannot import stad ({what}). Install stad where the workers run "
                "with `pip install .`, or `pip install -e . --config-settings editable_mode=compat` "
                "(an import-hook editable install loses to the worker's own storage/ spill folder)")
    return len(origins)


@lru_cache(maxsize=8)
def _watcher(address: str) -> Any:
    """One client per scheduler for watching: a new connection per poll of every waited task would
    cost more than the poll itself."""
    from distributed import Client

    return Client(address, timeout=10)


def _workers(address: str) -> dict[str, float]:
    """``{worker: GPU slots}`` now; empty when the scheduler cannot be asked (gone, or timing out)."""
    try:
        info = _watcher(address).scheduler_info(n_workers=-1)
    except TypeError:  # older distributed without n_workers
        info = _watcher(address).scheduler_info()
    except OSError:
        return {}
    return {w: float(d.get("resources", {}).get(GPU_RESOURCE, 0)) for w, d in info.get("workers", {}).items()}


def lost_seconds() -> float:
    return float(os.environ.get("STAD_DASK_LOST_SECONDS", "20"))


def await_result(future: Any, address: str, *, gpu: bool, poll: float = 2.0) -> Any:
    """``future.result()``, but fail with a clear error once no worker could run it for a while."""
    missing_since: float | None = None
    while True:
        try:
            return future.result(timeout=poll)
        except TimeoutError:
            pass
        workers = _workers(address)
        usable = [w for w, slots in workers.items() if slots >= 1 or not gpu]
        if usable:
            missing_since = None
            continue
        missing_since = missing_since or time.monotonic()
        if time.monotonic() - missing_since > lost_seconds():
            need = "with a GPU resource " if gpu else ""
            raise StadError(
                f"no Dask worker {need}is left at {address} ({len(workers)} workers; the others died or "
                f"left) for {lost_seconds():.0f} s: start workers again (`dask worker {address}"
                f"{' --resources GPU=1' if gpu else ''}`) and re-run; finished videos are kept")
