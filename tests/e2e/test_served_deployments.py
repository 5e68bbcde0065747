"""End to end against a real Prefect server: `prefect server start` on a free loopback port (SQLite
in a temp PREFECT_HOME), `stad serve` in a subprocess, `prefect deployment run --watch` completing,
and an interval schedule creating runs that complete. Every process is killed in ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TINY_SYNTH = "videos: 1\nseconds: 12\nactors_min: 2\nactors_max: 2\nalarm_fraction: 1.0\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers (servers start their own children)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _wait_for(predicate, timeout: float, what: str, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for proc, log in zip(procs, logs):
            if proc.poll() is not None:
                pytest.fail(f"{what}: a process exited early ({proc.args}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in logs)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


@pytest.fixture()
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], subprocess.Popen[bytes], Path]]:
    port = _free_port()
    home = tmp_path / "prefect-home"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        # Make schedules and the runner react in seconds instead of a minute.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "STAD_GPUS": "0",
    }
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    api = env["PREFECT_API_URL"]

    def healthy() -> bool:
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait_for(healthy, 180, "the Prefect server to answer /api/health", [proc], [log])
        yield api, env, proc, log
    finally:
        _stop(proc)


def _runs(api: str, deployment_name: str) -> list[dict[str, object]]:
    with httpx.Client(base_url=api, timeout=10) as client:
        dep = client.get(f"/deployments/name/synth/{deployment_name}").raise_for_status().json()
        body = {"flow_runs": {"deployment_id": {"any_": [dep["id"]]}}, "limit": 200}
        return client.post("/flow_runs/filter", json=body).raise_for_status().json()


def test_served_deployment_runs_and_schedule_fires(prefect_server, tmp_path: Path) -> None:
    api, env, server, server_log = prefect_server
    synth_cfg = tmp_path / "synth.yaml"
    synth_cfg.write_text(TINY_SYNTH)
    workspace = tmp_path / "ws"
    serve_log = tmp_path / "serve.log"
    with open(serve_log, "wb") as out:
        serve = subprocess.Popen(
            [str(BIN / "stad"), "serve", "--workspace", str(workspace), "--only", "synth",
             "--config", f"synth={synth_cfg}", "--interval", "synth=20", "--limit", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )
    try:
        def deployed() -> bool:
            r = httpx.get(f"{api}/deployments/name/synth/synth", timeout=5)
            return r.status_code == 200

        _wait_for(deployed, 120, "`stad serve` to register synth/synth", [server, serve], [server_log, serve_log])

        # A manual run with a parameter override, watched to completion by Prefect's own CLI.
        other = tmp_path / "ws-manual"
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "synth/synth", "-p", f"workspace={other}",
             "--watch", "--watch-timeout", "180"],
            env=env, capture_output=True, text=True, timeout=240,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + serve_log.read_text()[-3000:]
        assert "Completed" in run.stdout
        manual = [json.loads(p.read_text()) for p in other.glob("synth/*/_stage.json")]
        assert len(manual) == 1 and manual[0]["counts"]["videos"] == 1

        # The interval schedule (20 s: each run is a fresh process, so a shorter one would only queue
        # up work): the server creates runs on its own and the served runner completes them.
        def scheduled_completed() -> bool:
            return any(r["auto_scheduled"] and r["state_type"] == "COMPLETED" for r in _runs(api, "synth"))

        _wait_for(scheduled_completed, 120, "a scheduled run to complete", [server, serve], [server_log, serve_log])
        assert list(workspace.glob("synth/*/_stage.json")), "the scheduled run wrote nothing to the served workspace"
    finally:
        _stop(serve)
