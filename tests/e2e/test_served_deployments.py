"""End to end against a real Prefect server: `prefect server start` on a free loopback port (SQLite
in a temp PREFECT_HOME), `stad serve` in a subprocess, `prefect deployment run --watch` completing,
and an interval schedule creating runs that complete. Every process is killed in ``finally``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from e2e_lib import stop as _stop
from e2e_lib import wait_for as _wait_for

from stad_core.synth import SynthConfig

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TINY_SYNTH = "videos: 1\nseconds: 12\nactors_min: 2\nactors_max: 2\nalarm_fraction: 1.0\n"


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

        # A partial config is merged over the deployment's config file, not in place of it.
        merged_ws = tmp_path / "ws-merged"
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "synth/synth", "-p", f"workspace={merged_ws}",
             "-p", 'config={"seconds": 14}', "--watch", "--watch-timeout", "180"],
            env=env, capture_output=True, text=True, timeout=240,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + serve_log.read_text()[-3000:]
        [record] = [json.loads(p.read_text()) for p in merged_ws.glob("synth/*/_stage.json")]
        expected = SynthConfig(**{**yaml.safe_load(TINY_SYNTH), "seconds": 14})
        assert record["config_hash"] == expected.config_hash() and record["counts"]["videos"] == 1
        # A bad setting fails the run before any work, naming the setting.
        bad_ws = tmp_path / "ws-bad"
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "synth/synth", "-p", f"workspace={bad_ws}",
             "-p", 'config={"secnds": 14}', "--watch", "--watch-timeout", "120"],
            env=env, capture_output=True, text=True, timeout=180,
        )
        assert run.returncode != 0 and not bad_ws.exists()
        assert "secnds" in serve_log.read_text()

        # The interval schedule (20 s: each run is a fresh process, so a shorter one would only queue
        # up work): the server creates runs on its own and the served runner completes them.
        def scheduled_completed() -> bool:
            return any(r["auto_scheduled"] and r["state_type"] == "COMPLETED" for r in _runs(api, "synth"))

        _wait_for(scheduled_completed, 120, "a scheduled run to complete", [server, serve], [server_log, serve_log])
        assert list(workspace.glob("synth/*/_stage.json")), "the scheduled run wrote nothing to the served workspace"
    finally:
        _stop(serve)
