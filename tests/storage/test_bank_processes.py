"""Real processes against a local bank: concurrent writers, and writers killed with SIGKILL.

memory:// lives inside one process, so these run on local directories only.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from banklib import make_rows, make_spec, write_one

from storage.banks import open_bank
from storage.verify import verify_bank

HERE = Path(__file__).resolve().parent

CHILD = textwrap.dedent(
    """
    import sys, time
    import storage.banks as sb
    from banklib import make_rows, make_spec

    uri, stage = sys.argv[1], sys.argv[2]

    def pause(tag):
        if tag == stage:
            print("READY", flush=True)
            time.sleep(120)

    orig_array, orig_finish, orig_delete = sb.ZarrBank._array, sb.ZarrBank._finish, sb.ZarrBank._delete
    def _array(self, group, name, *a, **k):
        orig_array(self, group, name, *a, **k)
        pause(name)
    def _finish(self, *a, **k):
        pause("commit")
        orig_finish(self, *a, **k)
    def _delete(self, path):
        pause("gc")
        orig_delete(self, path)
    sb.ZarrBank._array, sb.ZarrBank._finish, sb.ZarrBank._delete = _array, _finish, _delete

    bank = sb.open_bank(uri, "a", make_spec(), chunk_bytes=64 * 16 * 2)
    if stage == "loop":  # rewrite forever; the parent kills us at a random moment
        print("READY", flush=True)
        i = 0
        while True:
            bank.write_video("v", make_rows(100 + i % 2, seconds=400))
            i += 1
    bank.write_video("v", make_rows(2, seconds=400))
    """
)


def _spawn(uri: str, stage: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, uri, stage], stdout=subprocess.PIPE, text=True, env=env
    )


def _kill_when_ready(proc: subprocess.Popen[str], delay: float = 0.0) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", f"child did not reach its stage (exit {proc.poll()})"
    if delay:
        import time

        time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _timestamps(seed: int) -> np.ndarray:
    return np.sort(make_rows(seed, seconds=400).timestamps)


def test_concurrent_writers_do_not_corrupt_each_other(tmp_path: Path) -> None:
    uri = str(tmp_path / "bank.zarr")
    open_bank(uri, "a", make_spec())
    jobs = [(uri, f"vid{i:02d}", i) for i in range(6)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert sorted(pool.map(write_one, jobs, chunksize=1)) == [j[1] for j in jobs]
    reader = open_bank(uri, "r")
    assert reader.videos() == [j[1] for j in jobs]
    for _, vid, seed in jobs:
        want = make_rows(seed, seconds=60)
        order = np.argsort(want.timestamps, kind="stable")
        got = reader.read_video(vid)
        np.testing.assert_array_equal(got.features, want.features[order].astype(np.float16))
        np.testing.assert_array_equal(got.person_ids, want.person_ids[order])
    assert verify_bank(reader) == []


@pytest.mark.parametrize(
    ("stage", "survivor"),
    [("features", 1), ("commit", 1), ("gc", 2)],
)
def test_sigkill_mid_rewrite_leaves_a_readable_bank(tmp_path: Path, stage: str, survivor: int) -> None:
    uri = str(tmp_path / "bank.zarr")
    bank = open_bank(uri, "a", make_spec(), chunk_bytes=64 * 16 * 2)
    bank.write_video("v", make_rows(1, seconds=400))
    _kill_when_ready(_spawn(uri, stage))

    reader = open_bank(uri, "r")
    assert reader.videos() == ["v"]
    # Killed before the commit: the old rows; killed after it: the new ones.
    np.testing.assert_array_equal(reader.read_video("v").timestamps, _timestamps(survivor))
    assert verify_bank(reader) == []
    assert reader.stale_versions() == [f"videos/v/v{1 if survivor == 2 else 2}"]
    # The video stays re-writable, and the rewrite cleans up what the dead writer left.
    bank.write_video("v", make_rows(3, seconds=400))
    reader.refresh()
    np.testing.assert_array_equal(reader.read_video("v").timestamps, _timestamps(3))
    assert reader.stale_versions() == []


def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    uri = str(tmp_path / "bank.zarr")
    open_bank(uri, "a", make_spec(), chunk_bytes=64 * 16 * 2).write_video("v", make_rows(100, seconds=400))
    rng = random.Random(0)
    for _ in range(2):
        _kill_when_ready(_spawn(uri, "loop"), delay=rng.uniform(0.05, 0.6))
        reader = open_bank(uri, "r")
        got = reader.read_video("v").timestamps
        assert any(np.array_equal(got, _timestamps(s)) for s in (100, 101))
        assert verify_bank(reader) == []
    bank = open_bank(uri, "a")
    bank.gc()
    assert bank.stale_versions() == [] and bank.videos() == ["v"]
