"""The synth -> ingest part of the pipeline under the Prefect test harness, and the stage CLI plumbing."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.registry import load_stage_config
from flows.pipeline import pipeline_flow
from flows.registry import get_flow
from stad_core.stage_configs import PipelineConfig
from storage.workspace import Workspace
from stad_core.errors import ConfigError, StadError
from stad_core.synth import SynthConfig

TINY = dict(videos=2, seconds=12, actors_min=2, actors_max=2, alarm_fraction=1.0)


def test_pipeline_synth_then_ingest(prefect_harness: str, tmp_path: Path, no_gpus: None) -> None:
    ws = str(tmp_path / "ws")
    config = PipelineConfig(synth=SynthConfig(**TINY), stop_after="ingest")
    refs = pipeline_flow(config, ws)
    assert set(refs) == {"synth", "ingest"}
    synth, ingest = refs["synth"], refs["ingest"]
    assert not synth.reused and not ingest.reused
    assert ingest.upstream == {"synth": synth.key}
    manifest = pq.read_table(Path(ingest.uri) / "manifest.parquet")
    assert sorted(manifest.column("video_id").to_pylist()) == ["synth_0000", "synth_0001"]
    assert ingest.counts["videos"] == 2
    assert ingest.counts["keyframes"] == sum(manifest.column("num_keyframes").to_pylist())
    assert Workspace(ws).latest("ingest") == ingest

    # Same config again: both stages reuse their complete outputs.
    again = pipeline_flow(config, ws)
    assert again["synth"].reused and again["ingest"].reused and again["ingest"].key == ingest.key

    # A changed upstream (different synth seed) is noticed downstream: new ingest identity.
    changed = pipeline_flow(PipelineConfig(synth=SynthConfig(**TINY, seed=1), stop_after="ingest"), ws)
    assert changed["synth"].key != synth.key
    assert not changed["ingest"].reused and changed["ingest"].key != ingest.key
    assert changed["ingest"].upstream == {"synth": changed["synth"].key}

    # --force on one stage recomputes it in place and keeps the other.
    forced = pipeline_flow(config, ws, force_stages=["ingest"])
    assert forced["synth"].reused and not forced["ingest"].reused and forced["ingest"].uri == ingest.uri


def test_stage_config_loading(tmp_path: Path) -> None:
    cfg_file = tmp_path / "pipeline.yaml"
    cfg_file.write_text("synth:\n  videos: 3\ningest:\n  verify_decode: false\n")
    cfg = load_stage_config("pipeline", cfg_file, ["synth.seconds=20", "dataset=synth"])
    assert cfg.synth.videos == 3 and cfg.synth.seconds == 20 and cfg.ingest.verify_decode is False
    with pytest.raises(ConfigError, match="unknown setting"):
        load_stage_config("synth", None, ["frames=3"])
    with pytest.raises(StadError, match="unknown stage 'extrakt'"):
        get_flow("extrakt")
