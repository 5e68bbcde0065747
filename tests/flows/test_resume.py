"""Resume semantics of per-video stages: skip complete videos, --force, kill -9, changed upstream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.resume import DONE_DIR, WorkKey, is_done, mark_done, run_video
from storage.workspace import StageRef, Workspace
from flows_testlib import subprocess_env
from stage_fixture import DigestConfig, digest_flow, make_videos

HERE = Path(__file__).resolve().parent


def _outputs(ref: StageRef) -> dict[str, bytes]:
    folder = Path(ref.uri) / "videos"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json"))}


def test_marker_requires_same_key(tmp_path: Path) -> None:
    key = WorkKey("v1", config_hash="c1", code_version="0.1", inputs={"ingest": "k1"})
    assert is_done(str(tmp_path), key) is None
    mark_done(str(tmp_path), key, {"rows": 3})
    assert is_done(str(tmp_path), key) == {"rows": 3}
    for changed in (
        WorkKey("v1", "c2", "0.1", {"ingest": "k1"}),
        WorkKey("v1", "c1", "0.2", {"ingest": "k1"}),
        WorkKey("v1", "c1", "0.1", {"ingest": "k2"}),
    ):
        assert is_done(str(tmp_path), changed) is None
    # The storage's own completeness flag overrides a marker (e.g. a bank video deleted by hand).
    assert is_done(str(tmp_path), key, is_complete=lambda vid: False) is None


def test_failed_work_leaves_no_marker(tmp_path: Path) -> None:
    key = WorkKey("v1", "c1", "0.1")
    mark_done(str(tmp_path), key, {"rows": 1})

    def boom() -> dict[str, int]:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        run_video(boom, str(tmp_path), key, force=True)
    assert is_done(str(tmp_path), key) is None  # the old marker must not survive a failed redo


def test_rerun_skips_and_force_redoes(prefect_harness: str, tmp_path: Path, no_gpus: None) -> None:
    videos = make_videos(tmp_path / "videos", 4)
    ws = str(tmp_path / "ws")
    cfg = DigestConfig(videos=str(videos))

    first = digest_flow(cfg, ws)
    assert first.counts["ran"] == 4 and first.counts["bytes"] == sum(100 + i for i in range(4))
    assert Workspace(ws).read_ref(first.path_in_workspace) == first and Workspace(ws).latest("digest") == first

    again = digest_flow(cfg, ws)  # complete stage: returned without running anything
    assert again.reused and again.key == first.key

    # Stage marker gone (e.g. crash before commit) -> per-video markers still skip every video.
    os.remove(Path(first.uri) / "_stage.json")
    resumed = digest_flow(cfg, ws)
    assert resumed.counts["skipped"] == 4 and resumed.counts["ran"] == 0

    before = _outputs(first)
    forced = digest_flow(cfg, ws, force=True)
    assert forced.counts["ran"] == 4 and forced.uri == first.uri
    assert _outputs(forced) == before

    # A changed config or changed input is a new identity: new folder, nothing reused.
    salted = digest_flow(DigestConfig(videos=str(videos), salt="b"), ws)
    assert salted.uri != first.uri and salted.counts["ran"] == 4
    (videos / "vid00.bin").write_bytes(b"edited")
    edited = digest_flow(cfg, ws)
    assert edited.key != first.key and edited.counts["ran"] == 4


def test_kill_9_then_rerun_matches_uninterrupted(prefect_harness: str, tmp_path: Path, no_gpus: None) -> None:
    videos = make_videos(tmp_path / "videos", 6)
    ws_killed, ws_clean = tmp_path / "killed", tmp_path / "clean"
    env = subprocess_env(PREFECT_API_URL=prefect_harness, STAD_GPUS="0", PYTHONPATH=os.pathsep.join([str(HERE.parent.parent), str(HERE)]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "stage_fixture.py"), str(videos), str(ws_killed), "0.4"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        markers: list[Path] = []
        while time.monotonic() < deadline:
            markers = list(ws_killed.glob(f"digest/*/{DONE_DIR}/*.json"))
            if len(markers) >= 2:
                break
            assert proc.poll() is None, "the stage finished or died before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    done_before = len(list(ws_killed.glob(f"digest/*/{DONE_DIR}/*.json")))
    assert 2 <= done_before < 6
    assert not list(ws_killed.glob("digest/*/_stage.json"))  # never committed

    cfg = DigestConfig(videos=str(videos), seconds_per_video=0.4)
    resumed = digest_flow(cfg, str(ws_killed))
    assert resumed.counts["skipped"] == done_before
    assert resumed.counts["ran"] == 6 - done_before
    clean = digest_flow(cfg, str(ws_clean))
    assert _outputs(resumed) == _outputs(clean) and len(_outputs(clean)) == 6


def test_workspace_and_markers_on_an_fsspec_store() -> None:
    # Banks and refs live on shared stores (s3, gcs, a mount): the conventions must not assume a disk.
    from stad_core.config import StageConfig

    class Cfg(StageConfig):
        value: int = 1

    ws = Workspace("memory://stad-test-ws")
    up = ws.commit(ws.plan("ingest", Cfg()))
    planned = ws.plan("extract", Cfg(), upstream=[up])
    assert planned.uri.startswith("memory://stad-test-ws/extract/") and planned.upstream == {"ingest": up.key}
    assert ws.load_complete(planned) is None
    ws.begin(planned)
    key = WorkKey("vid a/b", planned.config_hash, planned.code_version, {"ingest": up.key})
    assert run_video(lambda: {"rows": 2}, planned.uri, key).skipped is False
    assert run_video(lambda: {"rows": 99}, planned.uri, key).counts == {"rows": 2}  # skipped, stored counts
    done = ws.commit(planned)
    assert ws.latest("extract") == done and [r.stage for r in ws.history()] == ["extract", "ingest"]
    # Another upstream identity gives another downstream folder.
    other_up = ws.plan("ingest", Cfg(value=2))
    assert ws.plan("extract", Cfg(), upstream=[other_up]).uri != planned.uri
