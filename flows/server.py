"""Prefect servers stad starts: one that outlives a command, so `stad run` pays Prefect's start-up
once, and one that lives exactly as long as `stad demo`.

Without ``PREFECT_API_URL`` every flow run would start a temporary server (7-20 s on two cores,
before any work). Instead the first `stad run` starts `prefect server start` on a free loopback port
in the background, records it in ``<PREFECT_HOME>/stad-server.json``, and every later command that
finds it alive (its pid runs and ``/api/health`` answers) reuses it. `stad server stop` ends it;
`stad server status` shows it. A configured ``PREFECT_API_URL`` always wins and nothing is started.

`stad demo` instead runs a supervised server (``supervised_server``): stopped when the demo ends and,
through ``PR_SET_PDEATHSIG``, killed by the kernel if the demo process dies first (even ``kill -9``),
where Prefect's own temporary server would be left behind as an orphan.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from stad_core.errors import StadError

RECORD = "stad-server.json"
LOG = "stad-server.log"


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def _healthy(api: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{api}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_record(home: Path | None = None) -> dict[str, Any] | None:
    """The recorded server if it is alive and answers, else None."""
    path = (home or prefect_home()) / RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if _alive(int(record.get("pid", -1))) and _healthy(record.get("api", "")):
        return record
    return None


@contextmanager
def _lock(home: Path) -> Iterator[None]:
    """One starter at a time per home (two commands started together share one server)."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    with open(home / (RECORD + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_server(timeout: float = 180.0) -> str:
    """The API URL of a Prefect server for this command: ``PREFECT_API_URL`` if set, else the
    recorded background server, else a new one started now. Sets ``PREFECT_API_URL`` for this
    process (call before Prefect is imported)."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        return configured
    home = prefect_home()
    with _lock(home):
        record = read_record(home)
        if record is None:
            record = _start(home, timeout)
    os.environ["PREFECT_API_URL"] = record["api"]
    return str(record["api"])


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the parent dies, even by SIGKILL."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(home: Path, *, supervised: bool) -> tuple[subprocess.Popen[bytes], str, int]:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).parent / "prefect"
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOG, "ab") as log:
        # Background: its own session, it outlives this command until `stad server stop`.
        # Supervised: it dies with this process, whatever kills it.
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=not supervised,
                                preexec_fn=_die_with_parent if supervised and sys.platform == "linux" else None)
    return proc, api, port


def _wait_healthy(proc: subprocess.Popen[bytes], api: str, home: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(api):
            return
        if proc.poll() is not None:
            raise StadError(f"the Prefect server exited while starting (see {home / LOG})")
        time.sleep(0.3)
    proc.terminate()
    raise StadError(f"the Prefect server did not answer within {timeout:.0f} s (see {home / LOG})")


@contextmanager
def supervised_server(home: Path, timeout: float = 180.0) -> Iterator[str]:
    """A Prefect server for the duration of the block (`stad demo`): stopped at the end, and killed
    by the kernel if this process dies first, so nothing is ever left running. Sets PREFECT_API_URL."""
    proc, api, _ = _spawn(home, supervised=True)
    try:
        _wait_healthy(proc, api, home, timeout)
        os.environ["PREFECT_API_URL"] = api
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _start(home: Path, timeout: float) -> dict[str, Any]:
    proc, api, port = _spawn(home, supervised=False)
    _wait_healthy(proc, api, home, timeout)
    record = {"api": api, "pid": proc.pid, "port": port, "started": time.time(), "home": str(home)}
    (home / RECORD).write_text(json.dumps(record, indent=1))
    return record


def stop_server(home: Path | None = None) -> dict[str, Any] | None:
    """Stop the recorded background server (its whole process group); returns its record."""
    home = home or prefect_home()
    path = home / RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = int(record.get("pid", -1))
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return record
