"""`stad probe` and `stad ingest` through the real typer app (CliRunner) and the console entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app, main
from stad_core.errors import ConfigError
from stad_core.ingest import read_manifest
from stad_core.video import VideoError, encode_video

runner = CliRunner()


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "videos").mkdir()
    frames = np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    encode_video(root / "videos" / "clipA.mp4", frames, fps=10)  # 2 s
    (root / "train.csv").write_text(
        "clipA,0000,0.1,0.1,0.5,0.5,12,0\nclipA,0001,0.1,0.1,0.5,0.5,12,0\nclipA,0009,0.1,0.1,0.5,0.5,12,0\n"
    )
    return root


def test_help_for_both_commands() -> None:
    for command in ("probe", "ingest"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.shared_data
def test_probe_table_on_real_videos(shared_data: Path) -> None:
    paths = sorted(str(p) for p in (shared_data / "mmaction2").glob("*.mp4"))
    result = runner.invoke(app, ["probe", *paths], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for figure in ("28.000", "280", "6.000", "57", "9.500", "30.000", "300"):
        assert figure in result.output


def test_probe_json_and_times(small_dataset: Path) -> None:
    path = small_dataset / "videos" / "clipA.mp4"
    result = runner.invoke(app, ["probe", "--json", "--times", str(path)])
    assert result.exit_code == 0, result.output
    info_line, times_line = result.output.strip().splitlines()
    info = json.loads(info_line)
    assert info["num_frames"] == 20 and info["fps"] == 10.0 and info["path"] == str(path)
    assert [float(x) for x in times_line.split()] == pytest.approx(np.arange(20) / 10)


def test_probe_missing_file_is_one_line_and_exit_1(tmp_path: Path, monkeypatch, capsys) -> None:
    missing = tmp_path / "missing.mp4"
    result = runner.invoke(app, ["probe", str(missing)])
    assert result.exit_code == 1 and isinstance(result.exception, VideoError)
    # Through the console entry point: one line on stderr, no traceback.
    monkeypatch.setattr(sys, "argv", ["stad", "probe", str(missing)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.mp4: video file not found" in err


def test_probe_several_files_reports_each_failure(small_dataset: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mkv"
    garbage.write_bytes(b"nonsense" * 100)
    result = runner.invoke(app, ["probe", str(small_dataset / "videos" / "clipA.mp4"), str(garbage)])
    assert result.exit_code == 1
    assert "garbage.mkv: cannot open as a video" in result.output
    assert "clipA.mp4" in result.output


def test_ingest_writes_manifest_and_reports_rejects(small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["ingest", f"videos_dir={small_dataset / 'videos'}", f"train_csv={small_dataset / 'train.csv'}", f"out_dir={out}"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "videos: 1 (train 1); keyframes: 2" in result.output
    assert "keyframe_outside_video" in result.output
    rows = read_manifest(out / "manifest.parquet").to_pylist()
    assert rows[0]["keyframes"] == [0.0, 1.0]
    strict = runner.invoke(app, [*args, "--fail-on-rejects"])
    assert strict.exit_code == 2


def test_ingest_bad_setting_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "no_such_key=1"])
    assert result.exit_code == 1 and isinstance(result.exception, ConfigError)
    assert "unknown setting 'no_such_key'" in str(result.exception)
