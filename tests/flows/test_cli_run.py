"""`stad run`, `stad demo`, `stad history` and `python -m flows.<stage>` from the outside."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_run_unknown_stage_is_one_line_error() -> None:
    # Through the console-script entry point: StadError -> one line, exit 1, no traceback.
    result = subprocess.run([sys.executable, "-m", "flows.cli", "run", "extrakt"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert "unknown stage 'extrakt'" in result.stderr and "Traceback" not in result.stderr


def test_module_entry_point_rejects_bad_setting(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "flows.synth", "frames=3", "-w", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert "unknown setting 'frames'" in result.stderr and "Traceback" not in result.stderr


def test_dask_without_server_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, "-m", "flows.cli", "run", "synth", "--dask", "tcp://127.0.0.1:1",
                             "-w", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 1 and "--dask needs a Prefect server" in result.stderr


@pytest.fixture()
def quiet_prefect_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mute Prefect's console log handlers: they keep the stream of the first CliRunner invocation
    and fail on the next one once that stream is closed (the CLI's own output is what we check)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    monkeypatch.setattr(PrefectConsoleHandler, "emit", lambda self, record: None)


def test_demo_then_history(
    prefect_harness: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_prefect_console: None
) -> None:
    # With an API configured the demo uses it (here: the test harness) instead of a home under --out.
    monkeypatch.setenv("PREFECT_API_URL", prefect_harness)
    monkeypatch.setenv("STAD_GPUS", "0")
    out = tmp_path / "demo"
    first = runner.invoke(app, ["demo", "--out", str(out), "--preset", "tiny"])
    assert first.exit_code == 0, first.output
    for stage in ("synth", "ingest", "detect", "finetune", "extract", "train:lfb_max", "acfb", "evaluate:acar"):
        assert stage in first.output, stage
    # The final results table: one row per head with its val frame-mAP per class group.
    results = first.output[first.output.index("results: val frame-mAP"):]
    for head in ("linear", "lfb_max", "acar", "acfb"):
        assert head in results
    assert "short_term" in results and "long_term" in results and "relational" in results
    # It ends with `stad infer` on a held-out video and says where the annotated MP4 is.
    assert f"annotated video: {out / 'infer-demo' / 'out' / 'heldout.mp4'}" in first.output.replace("\n", "")
    assert (out / "infer-demo" / "out" / "heldout.mp4").is_file()
    assert not (out / ".prefect").exists()
    second = runner.invoke(app, ["demo", "--out", str(out), "--preset", "tiny"])
    assert second.exit_code == 0 and second.output.count("reused") == 13, second.output

    history = runner.invoke(app, ["history", "--workspace", str(out)])
    assert history.exit_code == 0 and "synth" in history.output and "ingest" in history.output
    assert "results history" in history.output and history.output.count("acfb") >= 2

    # `stad run ingest` alone on the synth output, with a config file and key=value overrides.
    synth_dir = next((out / "synth").glob("*-*"))
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(
        f"videos_dir: {synth_dir / 'videos'}\ntrain_csv: {synth_dir / 'annotations/train.csv'}\n"
        f"val_csv: {synth_dir / 'annotations/val.csv'}\nkeyframes: annotations\ntime_offset: 0\n"
    )
    ws = tmp_path / "ws"
    ran = runner.invoke(app, ["run", "ingest", "-c", str(cfg), "verify_decode=false", "-w", str(ws)])
    assert ran.exit_code == 0, ran.output
    assert list(ws.glob("ingest/*/manifest.parquet")) and list(ws.glob("ingest/*/_stage.json"))
    forced = runner.invoke(app, ["run", "ingest", "-c", str(cfg), "verify_decode=false", "-w", str(ws), "--force"])
    assert forced.exit_code == 0 and " ran " in forced.output.replace("│", " ")


def test_run_reuses_one_background_server_and_prints_clean_errors(tmp_path: Path) -> None:
    """Checks that need no Prefect fail before it starts; the first `stad run` starts one background
    server that later commands (also `python -m flows.<stage>`) reuse; failures print one line."""
    import json

    home, ws = tmp_path / "home", tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), STAD_GPUS="0")

    def stad(*args: str, module: str = "flows.cli") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT,
                              env=env, timeout=300)

    record = home / "stad-server.json"
    bad = stad("run", "synth", "videos=abc", "-w", str(ws))
    assert bad.returncode == 1 and "override videos=abc" in bad.stderr and not record.exists()
    missing = stad("run", "train", "-w", str(ws))
    assert missing.returncode == 1 and "needs a complete 'ingest' output" in missing.stderr and not record.exists()
    try:
        first = stad("run", "synth", "videos=2", "seconds=12", "-w", str(ws))
        assert first.returncode == 0, first.stdout + first.stderr
        server = json.loads(record.read_text())
        # Run alone, ingest finds the workspace's synthetic dataset; it reuses the same server.
        alone = stad("-w", str(ws), module="flows.ingest")
        assert alone.returncode == 0, alone.stdout + alone.stderr
        assert json.loads(record.read_text())["pid"] == server["pid"]
        assert "temporary server" not in alone.stdout + alone.stderr
        # A failure inside a flow: one `error:` line, no Prefect traceback.
        failed = stad("run", "detect", "source=proposals", f"proposals={tmp_path / 'none.csv'}", "-w", str(ws))
        assert failed.returncode == 1 and "error:" in failed.stderr, failed.stdout + failed.stderr
        assert "Traceback" not in failed.stdout + failed.stderr and "none.csv" in failed.stderr
    finally:
        stopped = stad("server", "stop")
    assert "stopped" in stopped.stdout and not record.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(server["pid"], 0)


def _servers_of(home: Path) -> list[int]:
    """Pids of processes started with PREFECT_HOME=home (the Prefect server and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PREFECT_HOME={home}".encode() in environ:
            found.append(int(entry.name))
    return found


def test_killed_demo_leaves_no_server_behind(tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "demo"
    home = (out / ".prefect").resolve()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env["STAD_GPUS"] = "0"
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "demo", "--out", str(out), "--preset", "tiny"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (out / "synth").exists():  # the server answered: work began
            assert proc.poll() is None, "the demo ended before it could be killed"
            time.sleep(0.2)
        servers = [pid for pid in _servers_of(home) if pid != proc.pid]
        assert servers, "no Prefect server process found for the demo's PREFECT_HOME"
        os.kill(proc.pid, signal.SIGKILL)  # the demo process alone, as `kill -9 PID` does
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _servers_of(home):
            time.sleep(0.2)
        assert not _servers_of(home), "the demo's Prefect server outlived it"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _servers_of(home):
            os.kill(pid, signal.SIGKILL)
