"""The full pipeline (synth -> ingest -> detect/finetune -> extract -> train -> acfb -> evaluate) on
a tiny synthetic dataset under the Prefect test harness; extract's kill -9 resume; re-runs that
recompute only what a changed config invalidates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from flows.pipeline import pipeline_flow
from stad_core.errors import StadError
from stad_core.stage_configs import PipelineConfig, demo_config
from storage.resume import DONE_DIR
from storage.stages.evaluate import workspace_history as read_history
from storage.workspace import StageRef, Workspace
from flows_testlib import subprocess_env

ROOT = Path(__file__).resolve().parents[2]


def tiny_pipeline(train_epochs: int = 1) -> PipelineConfig:
    """Three 12 s videos (two train, one val), the demo's tiny SlowFast, one short epoch each."""
    base = demo_config("tiny", videos=3, seconds=12)
    return base.model_copy(update={
        "finetune": base.finetune.model_copy(update={
            "max_clips": 8, "train": base.finetune.train.model_copy(update={"batch_size": 4})}),
        "train": base.train.model_copy(update={"epochs": train_epochs, "batch_size": 8}),
        "heads": ("linear", "acar"),
    })


def bank_arrays(uri: str) -> dict[str, dict[str, np.ndarray]]:
    from storage import open_reader

    bank = open_reader(uri)
    out = {}
    for video in bank.videos():
        rows = bank.read_video(video)
        out[video] = {"features": np.asarray(rows.features), "boxes": rows.boxes, "timestamps": rows.timestamps,
                      "person_ids": rows.person_ids}
    return out


@pytest.fixture(scope="module")
def pipeline_run(prefect_harness: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, StageRef]]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STAD_GPUS", "0")  # CPU-only semantics on any host
        ws = str(tmp_path_factory.mktemp("pipeline") / "ws")
        started = time.perf_counter()
        refs = pipeline_flow(tiny_pipeline(), ws)
        print(f"\n[timing] tiny pipeline: {time.perf_counter() - started:.1f} s")
        yield ws, refs


def _artifacts(api: str, key: str) -> list[dict[str, object]]:
    # Straight to the REST API: prefect 3.8's Artifact.get sends nulls this server's schema rejects.
    import httpx

    body = {"artifacts": {"key": {"any_": [key]}}, "limit": 5, "offset": 0}
    response = httpx.post(f"{api.rstrip('/')}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def test_pipeline_end_to_end(pipeline_run: tuple[str, dict[str, StageRef]], prefect_harness: str) -> None:
    from storage.stages.evaluate import read_summary
    from storage.stages.extract import bank_uris

    ws, refs = pipeline_run
    expected = {"synth", "ingest", "detect", "finetune", "extract", "train:linear", "train:acar", "acfb",
                "evaluate:linear", "evaluate:acar", "evaluate:acfb"}
    assert set(refs) == expected and not any(r.reused for r in refs.values())
    # Data dependencies are explicit in the identities.
    assert refs["extract"].upstream == {"ingest": refs["ingest"].key, "detect": refs["detect"].key,
                                       "finetune": refs["finetune"].key}
    assert refs["acfb"].upstream["train"] == refs["train:acar"].key
    assert refs["evaluate:acfb"].upstream["acfb"] == refs["acfb"].key

    banks = bank_uris(refs["extract"])
    lt = bank_arrays(banks["long_term"])
    assert sorted(lt) == ["synth_0000", "synth_0001", "synth_0002"] and refs["extract"].counts["ran"] == 3
    assert all(v["features"].shape[1] == 288 + 5 + 6 and len(v["features"]) > 0 for v in lt.values())  # + geometry, colours
    # Excluded keyframes (each tiny video opens with the alarm flash) have bank rows, since long-term
    # windows need them, but are never trained on.
    from stad_core.ava import read_exclusions

    excluded = {(k.video_id, int(k.timestamp)) for k in read_exclusions(Path(refs["synth"].uri) / "annotations" / "exclusions.csv")}
    banked = {(v, int(t)) for v, a in lt.items() for t in np.unique(a["timestamps"])}
    assert excluded and excluded <= banked
    train_banked = {k for k in banked if k[0] != "synth_0002"}  # synth_0002 is the val video
    metrics = json.loads((Path(refs["train:linear"].uri) / "metrics.json").read_text())
    assert metrics["train_keyframes"] == len(train_banked - excluded) < len(train_banked)
    assert refs["extract"].counts["rows"] == sum(len(v["features"]) for v in lt.values())
    # Ground-truth boxes carry the synthetic actors' ids (0-based per video) from detect into the bank.
    assert all((v["person_ids"] >= 0).all() for v in lt.values())
    ac = bank_arrays(str(Path(refs["acfb"].uri) / "actor_context.zarr"))
    assert {k: len(v["features"]) for k, v in ac.items()} == {k: len(v["features"]) for k, v in lt.items()}

    for head in ("linear", "acar", "acfb"):
        summary = read_summary(refs[f"evaluate:{head}"])
        assert summary["head"] == head and summary["split"] == "val"
        assert summary["mAP"] is not None and 0.0 <= summary["mAP"] <= 1.0
        assert (Path(refs[f"evaluate:{head}"].uri) / "detections.csv").stat().st_size > 0
        assert list((Path(refs[f"evaluate:{head}"].uri) / "report").glob("pr_*.png"))
    history = read_history(ws)
    assert [r["head"] for r in history] == ["linear", "acar", "acfb"]
    assert all(r["extract_key"] == refs["extract"].key for r in history)
    for key, kind in (("frame-map-linear", "table"), ("per-class-ap-acar", "table"), ("report-acfb", "markdown"),
                      ("results-history", "table"), ("bank-acfb", "markdown")):  # Prefect stores links as markdown
        found = _artifacts(prefect_harness, key)
        assert found and found[0]["type"] == kind, key
    assert "data:image/png;base64," in str(_artifacts(prefect_harness, "report-acfb")[0]["data"])
    assert "long_term.zarr" in str(_artifacts(prefect_harness, "bank-acfb")[0]["data"])


def test_rerun_with_new_train_config_recomputes_only_train_and_after(pipeline_run: tuple[str, dict[str, StageRef]]) -> None:

    ws, refs = pipeline_run
    again = pipeline_flow(tiny_pipeline(), ws)
    assert all(r.reused for r in again.values())  # nothing changed: every stage reuses its output
    changed = pipeline_flow(tiny_pipeline(train_epochs=2), ws)
    for stage in ("synth", "ingest", "detect", "finetune", "extract"):
        assert changed[stage].reused and changed[stage].key == refs[stage].key, stage
    for name in ("train:linear", "train:acar", "acfb", "evaluate:linear", "evaluate:acar", "evaluate:acfb"):
        assert not changed[name].reused and changed[name].key != refs[name].key, name
    assert changed["train:linear"].counts["epochs"] == 2
    assert len(read_history(ws)) == 6  # three new evaluations, the old rows kept


def test_reevaluate_and_history_cli(pipeline_run: tuple[str, dict[str, StageRef]]) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.evaluate import reevaluate_flow
    from stad_core.stage_configs import EvaluateConfig

    ws, _ = pipeline_run
    # Every trained head has an evaluation already: a no-op that adds no history row.
    assert all(r.reused for r in reevaluate_flow(EvaluateConfig(), ws))
    # A new evaluation setting evaluates every stored head once.
    heads = len(Workspace(ws).history("train")) + len(Workspace(ws).history("acfb"))
    before = len(read_history(ws))
    fresh = reevaluate_flow(EvaluateConfig(plots=False), ws)
    assert len(fresh) == heads and not any(r.reused for r in fresh)
    assert len(read_history(ws)) == before + heads
    result = CliRunner().invoke(app, ["history", "-w", ws, "--results"])
    assert result.exit_code == 0, result.output
    assert result.output.count("acfb") >= 2 and "results history" in result.output


def test_extract_kill_9_then_rerun_gives_identical_bank(pipeline_run: tuple[str, dict[str, StageRef]],
                                                        prefect_harness: str, tmp_path: Path) -> None:
    """SIGKILL a standalone `python -m flows.extract` mid-run; the re-run skips finished videos and
    its bank equals a full recomputation's."""
    from flows.extract import extract_flow
    from storage.stages.extract import bank_uris
    from stad_core.extract import ExtractConfig

    ws, refs = pipeline_run
    # A new extract identity (bigger clips: slow enough to be killed between videos).
    values = {**demo_config().extract.model_dump(), "num_frames": 24, "batch_size": 4}
    cfg_file = tmp_path / "extract.yaml"
    cfg_file.write_text(yaml.safe_dump(values))
    # One intra-op thread, like this test process (tests/conftest.py): CPU kernels sum in a
    # thread-count dependent order, and the comparison below is bit for bit.
    env = subprocess_env(PREFECT_API_URL=prefect_harness, STAD_GPUS="0", PREFECT_LOGGING_LEVEL="WARNING",
                         OMP_NUM_THREADS="1")
    existing = {p.parent.parent for p in Path(ws).glob(f"extract/*/{DONE_DIR}/*.json")}

    def new_markers() -> list[Path]:
        return [p for p in Path(ws).glob(f"extract/*/{DONE_DIR}/*.json") if p.parent.parent not in existing]

    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "flows.extract", "-c", str(cfg_file), "-w", ws], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not new_markers():
            assert proc.poll() is None, "extract finished or died before it could be killed"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    killed_after = time.perf_counter() - started
    markers = new_markers()
    folders = {m.parent.parent for m in markers}
    assert len(folders) == 1 and 1 <= len(markers) < 3
    folder = folders.pop()
    assert not (folder / "_stage.json").exists()  # never committed

    from storage import open_bank

    finished = {m.stem: open_bank(str(folder / "long_term.zarr"), "r").video_info(m.stem) for m in markers}
    config = ExtractConfig(**values)
    started = time.perf_counter()
    resumed = extract_flow(config, ws)
    resumed_s = time.perf_counter() - started
    assert Path(resumed.uri) == folder
    assert resumed.counts["skipped"] == len(markers) and resumed.counts["ran"] == 3 - len(markers)
    after_resume = bank_arrays(bank_uris(resumed)["long_term"])
    reopened = open_bank(bank_uris(resumed)["long_term"], "r")
    for video, info in finished.items():  # kept as written before the kill, not recomputed
        assert reopened.video_info(video) == info

    started = time.perf_counter()
    full = extract_flow(config, ws, force=True)  # every video recomputed in place
    full_s = time.perf_counter() - started
    assert full.counts["ran"] == 3
    clean = bank_arrays(bank_uris(full)["long_term"])
    assert sorted(after_resume) == sorted(clean) == ["synth_0000", "synth_0001", "synth_0002"]
    for video in clean:
        for name, value in clean[video].items():
            np.testing.assert_array_equal(after_resume[video][name], value, err_msg=f"{video}.{name}")
    print(f"\n[timing] extract killed after {killed_after:.1f} s ({len(markers)}/3 videos done); "
          f"re-run {resumed_s:.1f} s ({3 - len(markers)} videos); uninterrupted (forced) {full_s:.1f} s")
    assert Workspace(ws).latest("extract") is not None


def test_stage_modules_and_configs_agree() -> None:
    from flows.registry import load_stage_config
    from flows.registry import FLOWS

    for name, entry in FLOWS.items():
        assert entry.load_flow().name == name
        assert Path(ROOT / str(entry.config_file())).is_file(), name
        load_stage_config(name, ROOT / str(entry.config_file()), [])
    # `stad demo` embeds its settings so it runs from any directory; the YAML documents the same.
    assert load_stage_config("pipeline", ROOT / "configs/pipeline.yaml", []) == demo_config()


def test_copied_workspace_trains_on_its_own_bank(pipeline_run: tuple[str, dict[str, StageRef]], tmp_path: Path) -> None:
    """Stage records are workspace-relative: a copy of a workspace whose original is gone still
    resolves every upstream output (manifest videos, annotation CSVs, banks) inside itself."""
    import shutil

    from stad_core.train import TrainConfig
    from storage.stages.ingest import dataset_of, videos_of
    from storage.stages.runner import run_stage

    ws, refs = pipeline_run
    first, moved = tmp_path / "first", tmp_path / "moved"
    shutil.copytree(ws, first)
    shutil.copytree(first, moved)
    shutil.rmtree(first)  # nothing may point there any more
    copy = Workspace(moved)
    ingest = copy.latest("ingest")
    assert ingest is not None and ingest.uri.startswith(str(moved))
    assert all(v.path.startswith(str(moved)) for v in videos_of(ingest))
    assert all(p.startswith(str(moved)) for p in dataset_of(ingest).splits.values())
    config = TrainConfig(**{**tiny_pipeline().train.model_dump(), "head": "linear", "epochs": 3})
    upstream = {"ingest": copy.find("ingest", refs["ingest"].key), "extract": copy.find("extract", refs["extract"].key)}
    assert all(ref.uri.startswith(str(moved)) for ref in upstream.values())
    trained = run_stage("train", config, str(moved), upstream=upstream)  # plain Python: no Prefect in the way
    assert not trained.reused and trained.uri.startswith(str(moved))
    assert trained.upstream["extract"] == refs["extract"].key and trained.counts["epochs"] == 3
    assert not first.exists()
    # A record copied in from another stage folder is refused instead of being read as this one.
    other = Path(trained.uri).parent / "0000000000000000-0000000000000000"
    shutil.copytree(trained.uri, other)
    with pytest.raises(StadError, match="copied in from elsewhere"):
        copy.read_ref(f"train/{other.name}")
