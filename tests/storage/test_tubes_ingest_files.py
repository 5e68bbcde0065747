"""tubes_ingest with source=files: a ground-truth pickle + a videos folder (MultiSports-style names)."""

from __future__ import annotations

import json
import shutil

import pytest

from stad_core.errors import StadError
from stad_core.synth import preset_config
from stad_core.tubes import save_ground_truth
from stad_core.tubes.config import TubesIngestConfig
from stad_core.tubes.synth import synth_tubes
from storage.stages.runner import run_stage
from storage.uri import local_path


def test_files_source_reads_a_pickle_and_finds_videos_by_file_name(tmp_path):
    cfg = preset_config("tiny", {"videos": 2, "seconds": 12, "keyframe_margin": 1, "width": 64, "height": 48})
    ws = str(tmp_path / "ws")
    synth = run_stage("synth", cfg, ws)
    # The dataset's layout: videos in per-sport folders, names "sport/<file stem>" in the pickle.
    videos = tmp_path / "videos" / "juggling"
    videos.mkdir(parents=True)
    for f in (local_path(synth.uri) / "videos").iterdir():
        shutil.copy(f, videos / f.name)
    gt = synth_tubes(cfg)
    rename = {v: f"juggling/{v}" for v in gt.nframes}
    gt.train_videos = [[rename[v] for v in s] for s in gt.train_videos]
    gt.test_videos = [[rename[v] for v in s] for s in gt.test_videos]
    gt.nframes = {rename[v]: n for v, n in gt.nframes.items()}
    gt.resolution = {rename[v]: r for v, r in gt.resolution.items()}
    gt.gttubes = {rename[v]: t for v, t in gt.gttubes.items()}
    gt.extra = {}
    save_ground_truth(gt, tmp_path / "gt.pkl")
    config = TubesIngestConfig(source="files", groundtruth=str(tmp_path / "gt.pkl"), videos_dir=str(tmp_path / "videos"),
                               frame_stride=5, margin_frames=10)
    ref = run_stage("tubes_ingest", config, ws)
    assert ref.counts["videos"] == 2 and ref.counts["rejects"] == 0
    assert ref.counts["keyframes"] == 2 * len(range(11, 111, 5))  # frames 11..110 of 120, every 5th
    meta = json.loads((local_path(ref.uri) / "tubes.json").read_text())
    assert meta["videos"] == {"synth_0000": "juggling/synth_0000", "synth_0001": "juggling/synth_0001"}
    assert meta["fps"]["juggling/synth_0000"] == pytest.approx(10.0)  # probed from the file
    with pytest.raises(StadError, match="needs groundtruth"):
        run_stage("tubes_ingest", TubesIngestConfig(source="files"), ws)
