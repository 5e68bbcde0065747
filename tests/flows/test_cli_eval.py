"""`stad eval-ava` end to end (typer's CliRunner; the error path through ``main``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app, main

runner = CliRunner()

LABELMAP = 'item {\n  name: "stand"\n  id: 12\n}\nitem {\n  name: "talk to"\n  id: 79\n}\nitem {\n  name: "swim"\n  id: 13\n}\n'
GT = "vidA,0902,0.1,0.1,0.5,0.9,12,0\nvidA,0903,0.1,0.1,0.5,0.9,12,0\nvidA,0902,0.1,0.1,0.5,0.9,79,0\n"
DET = "vidA,902,0.1,0.1,0.5,0.9,12,0.9\nvidA,904,0.1,0.1,0.5,0.9,12,0.8\nvidA,903,0.1,0.1,0.5,0.9,12,0.7\nvidA,902,0.1,0.1,0.5,0.9,13,0.7\n"


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, text in (("labels.pbtxt", LABELMAP), ("gt.csv", GT), ("det.csv", DET), ("excl.csv", "vidA,0904\n")):
        paths[name] = tmp_path / name
        paths[name].write_text(text)
    return paths


def test_eval_ava_prints_ap_lines_and_writes_json_and_plots(files, tmp_path):
    args = ["eval-ava", "-l", str(files["labels.pbtxt"]), "-g", str(files["gt.csv"]), "-d", str(files["det.csv"])]
    result = runner.invoke(app, args + ["--json", str(tmp_path / "m.json"), "--plots", str(tmp_path / "plots")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # stand: T F T with 2 positives -> 1/2 + 1/2 * 2/3; swim: no ground truth; talk to: 0.
    assert result.output.splitlines() == [
        "AP@0.5IOU\t12\tstand\t0.833333",
        "AP@0.5IOU\t13\tswim\tnan",
        "AP@0.5IOU\t79\ttalk to\t0.000000",
        "mAP@0.5IOU\t0.416667",
    ]
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["mAP"] == pytest.approx(5 / 12) and data["per_class"]["13"] is None
    assert data["num_gt"] == {"12": 2, "13": 0, "79": 1}
    assert (tmp_path / "plots" / "frame_map.md").exists() and (tmp_path / "plots" / "pr_pose.png").exists()
    excluded = runner.invoke(app, args + ["-e", str(files["excl.csv"])], catch_exceptions=False)
    assert "AP@0.5IOU\t12\tstand\t1.000000" in excluded.output
    mm = runner.invoke(app, args + ["--variant", "mmaction2"], catch_exceptions=False)
    assert "AP@0.5IOU\t79\ttalk to\tnan" in mm.output  # no detections: not scored by MMAction2


def test_eval_ava_errors_are_one_line(files, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(DET.replace("0.8\n", "0.8,extra\n"))
    monkeypatch.setattr(sys, "argv", ["stad", "eval-ava", "-l", str(files["labels.pbtxt"]), "-g", str(files["gt.csv"]), "-d", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "Traceback" not in err
    monkeypatch.setattr(sys, "argv", ["stad", "eval-ava", "-l", str(files["labels.pbtxt"]), "-g", str(files["gt.csv"]), "-d", str(files["det.csv"]), "--protocol", "2018"])
    with pytest.raises(SystemExit):
        main()
    assert "unknown protocol" in capsys.readouterr().err


def test_eval_ava_pixel_boxes_and_lenient(files, tmp_path):
    """Pixel-coordinate detections are refused with the fix; --pixel-boxes reads them; --lenient
    turns a bad row into one warning line on stderr."""
    base = ["eval-ava", "-l", str(files["labels.pbtxt"]), "-g", str(files["gt.csv"])]
    expected = runner.invoke(app, base + ["-d", str(files["det.csv"])], catch_exceptions=False).stdout
    px = tmp_path / "det_px.csv"
    px.write_text(DET.replace("0.1,0.1,0.5,0.9", "64,48,320,432"))  # 640 x 480 frames
    refused = runner.invoke(app, base + ["-d", str(px)])
    assert refused.exit_code != 0
    assert "look like pixel coordinates" in str(refused.exception) and "--pixel-boxes WIDTH HEIGHT" in str(refused.exception)
    read = runner.invoke(app, base + ["-d", str(px), "--pixel-boxes", "640", "480"], catch_exceptions=False)
    assert read.exit_code == 0 and read.stdout == expected
    odd = tmp_path / "odd.csv"
    odd.write_text(DET + "vidA,902,0.1,0.1,0.5,0.9,81,0.5\n")  # a class of no label map
    assert "odd.csv:5: action id 81" in str(runner.invoke(app, base + ["-d", str(odd)]).exception)
    lenient = runner.invoke(app, base + ["-d", str(odd), "--lenient"], catch_exceptions=False)
    assert lenient.exit_code == 0 and lenient.stdout == expected
    assert lenient.stderr == (
        f"warning: {odd}:5: action id 81 is not in the label map or the ground truth; 1 such row dropped (--lenient)\n"
    )
