"""The temporal stages end to end on the tiny synthetic preset (plain runner), plus resume and reuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stad_core.temporal.configs import TemporalEvaluateConfig, TemporalIngestConfig, temporal_demo_config
from stad_core.temporal.fine_bank import from_rows, layout
from stad_core.temporal.metric import charades_localize
from stad_core.temporal.submission import read_submission
from storage.stages.runner import run_stage
from storage.stages.temporal_extract import bank_uri
from storage.stages.temporal_ingest import entries_of
from storage.uri import local_path


@pytest.fixture(scope="module")
def temporal_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    ws = str(tmp_path_factory.mktemp("temporal_ws"))
    cfg = temporal_demo_config("tiny")
    refs = {"synth": run_stage("temporal_synth", cfg.synth, ws)}
    refs["ingest"] = run_stage("temporal_ingest", TemporalIngestConfig(), ws)  # alone: the latest synth output
    refs["extract"] = run_stage("temporal_extract", cfg.extract, ws)
    refs["train"] = run_stage("temporal_train", cfg.train, ws)
    refs["evaluate"] = run_stage("temporal_evaluate", TemporalEvaluateConfig(), ws)
    return ws, refs


def test_manifest_has_per_frame_labels(temporal_run: tuple[str, dict]) -> None:
    _, refs = temporal_run
    entries = entries_of(refs["ingest"])
    assert refs["ingest"].counts["videos"] == 8 and refs["ingest"].counts["rejects"] == 0
    assert {e.split for e in entries} == {"train", "test"}
    import pyarrow.parquet as pq

    rows = pq.read_table(local_path(refs["ingest"].path("manifest.parquet"))).to_pylist()
    first = rows[0]
    assert len(first["frame_labels"]) == first["frames"] == 64
    act = first["activities"][0]  # a frame inside the first activity carries its class
    inside = int(np.ceil(act[1] * first["fps"]))
    assert int(act[0]) in first["frame_labels"][inside]


def test_fine_bank_rows_are_feature_steps(temporal_run: tuple[str, dict]) -> None:
    from storage import open_reader

    _, refs = temporal_run
    bank = open_reader(bank_uri(refs["extract"]))
    assert bank.spec.kind == "fine" and bank.spec.clip_stride == 4
    cols = layout(bank.spec)
    assert list(cols) == ["coarse", "slow.res4", "slow.res5"]
    videos = bank.videos()
    assert len(videos) == 8
    rows = bank.read_video(videos[0])
    assert len(rows) == 16  # 64 frames / step 4
    np.testing.assert_allclose(rows.timestamps[:2], [2 / 8, 6 / 8])  # step centres at 8 fps
    feats = from_rows(rows, bank.spec)
    assert feats["coarse"].shape == (16, 192) and feats["coarse"].min() >= 0 and feats["coarse"].max() <= 1.01


def test_evaluation_writes_a_scorable_submission(temporal_run: tuple[str, dict]) -> None:
    ws, refs = temporal_run
    out = Path(local_path(refs["evaluate"].uri))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["head"] == "coarse_fine" and 0 <= summary["mAP"] <= 1
    test_videos = [e.video for e in entries_of(refs["ingest"], ("test",))]
    sub = read_submission(out / "submission.txt", 6)
    assert len(sub.predictions) == 25 * len(test_videos)
    rescored = charades_localize(test_videos, sub.predictions, 6)  # the file alone gives the same number
    assert rescored.map == pytest.approx(summary["mAP"], abs=1e-5)
    from storage.stages.evaluate import workspace_history

    assert any(r["head"] == "temporal:coarse_fine" for r in workspace_history(ws))


def test_rerun_reuses_and_extract_resumes_per_video(temporal_run: tuple[str, dict]) -> None:
    ws, refs = temporal_run
    cfg = temporal_demo_config("tiny")
    again = run_stage("temporal_extract", cfg.extract, ws)
    assert again.reused and again.key == refs["extract"].key
    # A different step is a new bank; an interrupted one resumes: drop one video's completion.
    from storage import open_bank

    other = cfg.extract.model_copy(update={"step": 8, "clip_frames": 32})
    first = run_stage("temporal_extract", other, ws)
    bank = open_bank(bank_uri(first), "a")
    victim = bank.videos()[0]
    bank.delete_video(victim)
    from storage.workspace import Workspace

    Workspace(ws).begin(first, force=True)  # un-mark complete, as a crash before commit leaves it
    resumed = run_stage("temporal_extract", other, ws)
    assert resumed.counts["ran"] == 1 and resumed.counts["skipped"] == 7
    assert victim in open_bank(bank_uri(resumed), "r").videos()
