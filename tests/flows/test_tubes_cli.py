"""`stad eval-tubes` and `stad synth-tubes` end to end (typer's CliRunner; the error path through ``main``)."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app, main
from stad_core.tubes import save_ground_truth
from stad_core.tubes.gt import TubeGroundTruth

runner = CliRunner()


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    tube = np.array([[f, 10, 10, 60, 110] for f in range(1, 41)], dtype=np.float64)
    gt = TubeGroundTruth(["run", "jump"], [[]], [["a/v1"]], {"a/v1": 50}, {"a/v1": (240, 320)}, {"a/v1": {0: [tube]}})
    paths = {"gt": tmp_path / "gt.pkl", "frames": tmp_path / "frames.pkl", "tubes": tmp_path / "tubes.pkl"}
    save_ground_truth(gt, paths["gt"])
    rows = np.array([[0, f, 0, 0.9, 10, 10, 60, 110] for f in range(1, 21)])  # first half only
    paths["frames"].write_bytes(pickle.dumps(rows))
    paths["tubes"].write_bytes(pickle.dumps({0: [("a/v1", 0.9, np.column_stack([tube[:20], np.ones(20)]))]}))
    return paths


def test_eval_tubes_links_frame_detections_and_writes_reports(files, tmp_path):
    args = ["eval-tubes", "-g", str(files["gt"]), "-f", str(files["frames"])]
    result = runner.invoke(app, args + ["--json", str(tmp_path / "m.json"), "--report", str(tmp_path / "rep"),
                                        "--save-tubes", str(tmp_path / "linked.pkl")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # 20 of 40 annotated frames detected -> f-AP 0.5; the linked tube spans 1..20: temporal IoU 19/39 < 0.5
    assert lines[0].split() == ["f-mAP@0.5", "50.00"]
    assert lines[1].split() == ["v-mAP@0.2", "100.00"] and lines[2].split() == ["v-mAP@0.5", "0.00"]
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["v-mAP@0.1:0.9"] == pytest.approx(4 / 9)
    assert data["video_curve"]["0.4"] == 1.0 and data["video_curve"]["0.5"] == 0.0
    assert (tmp_path / "rep" / "video_map.png").stat().st_size > 0
    assert "| run | 50.00 | 100.00 | 0.00 |" in (tmp_path / "rep" / "report.md").read_text()
    linked = pickle.loads((tmp_path / "linked.pkl").read_bytes())
    assert [(v, len(t)) for v, _, t in linked[0]] == [("a/v1", 20)]
    # ACT rules: +1 frame spans -> 20/40 = 0.5 is a hit at 0.5; 'jump' (no ground truth) counts as AP 0
    act = runner.invoke(app, ["eval-tubes", "-g", str(files["gt"]), "-v", str(files["tubes"]), "--preset", "act",
                              "--json", str(tmp_path / "act.json")], catch_exceptions=False)
    assert act.stdout.splitlines()[1].split() == ["v-mAP@0.5", "50.00"]
    assert json.loads((tmp_path / "act.json").read_text())["video_per_class"]["0.5"] == {"run": 1.0, "jump": 0.0}


def test_eval_tubes_errors_are_one_line(files, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(np.array([[3, 1, 0, 0.9, 0, 0, 1, 1]], dtype=np.float64)))
    monkeypatch.setattr(sys, "argv", ["stad", "eval-tubes", "-g", str(files["gt"]), "-f", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "row 0: video_index 3 is not in 0..0" in err and "Traceback" not in err


def test_synth_tubes_exports_a_dataset(tmp_path):
    from stad_core.synth import generate_dataset, preset_config

    cfg = preset_config("tiny", {"videos": 2, "seconds": 12, "keyframe_margin": 1, "width": 64, "height": 48})
    generate_dataset(cfg, tmp_path / "ds")
    out = tmp_path / "gt.pkl"
    result = runner.invoke(app, ["synth-tubes", "-d", str(tmp_path / "ds"), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from stad_core.tubes import load_ground_truth

    gt = load_ground_truth(out)
    assert gt.test_videos == [["synth_0001"]] and gt.resolution["synth_0000"] == (48, 64)
    assert "tubes in 2 videos (1 test), 12 classes" in result.stdout
