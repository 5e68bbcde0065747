"""Two extract processes on one workspace split the videos (per-video leases): every video is
computed exactly once, and the bank equals a single run's bit for bit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stad_core.stage_configs import demo_config
from storage.stages.runner import run_stage

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# Each process imports, says it is ready, and starts when told: both start together however long
# their imports take on a loaded machine.
SCRIPT = """
import json, pathlib, sys, time
from stad_core.extract import ExtractConfig
from storage.stages.runner import run_stage
gate = pathlib.Path(sys.argv[3])
(gate / sys.argv[4]).touch()
while not (gate / "go").exists():
    time.sleep(0.05)
ref = run_stage("extract", ExtractConfig(**json.loads(sys.argv[2])), sys.argv[1])
print(json.dumps(ref.counts))
"""


def _bank(ws: Path) -> dict[str, np.ndarray]:
    from storage import open_reader

    [uri] = [str(p) for p in ws.glob("extract/*/long_term.zarr")]
    bank = open_reader(uri)
    return {v: np.asarray(bank.read_video(v).features) for v in bank.videos()}


def test_two_concurrent_extracts_split_the_videos(tmp_path: Path) -> None:
    config = demo_config("tiny", videos=4, seconds=12)
    ws = tmp_path / "ws"
    synth = run_stage("synth", config.synth, ws)
    ingest = run_stage("ingest", config.ingest, ws, upstream={"synth": synth})
    run_stage("detect", config.detect, ws, upstream={"ingest": ingest})
    finetune = config.finetune.model_copy(update={"train": None})  # random weights are enough here
    run_stage("finetune", finetune, ws, upstream={"ingest": ingest})
    single = tmp_path / "single"
    shutil.copytree(ws, single)

    extract = config.extract.model_copy(update={"num_frames": 16, "batch_size": 2})  # slow enough to overlap
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    gate = tmp_path / "gate"
    gate.mkdir()
    args = [sys.executable, "-c", SCRIPT, str(ws), extract.model_dump_json(), str(gate)]
    procs = [subprocess.Popen([*args, f"ready{i}"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    deadline = time.monotonic() + 300
    while len(list(gate.glob("ready*"))) < 2 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "a writer died while importing"
        time.sleep(0.05)
    (gate / "go").touch()
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
    counts = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert all(c["videos"] == 4 for c in counts)
    assert sum(c["ran"] for c in counts) == 4, counts  # each video computed exactly once...
    assert all(c["ran"] >= 1 for c in counts), counts  # ...and the two runs shared the work
    markers = [json.loads(p.read_text()) for p in ws.glob("extract/*/_done/*.json")]
    assert len(markers) == 4 and len({m["worker"] for m in markers}) == 2
    assert not list(ws.glob("extract/*/_leases/*.json"))  # every lease released

    run_stage("extract", extract, single)
    left, right = _bank(ws), _bank(single)
    assert sorted(left) == sorted(right) and len(left) == 4
    for video in left:
        np.testing.assert_array_equal(left[video], right[video], err_msg=video)
