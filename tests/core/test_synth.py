"""Synthetic dataset generation: config, determinism, files, overwrite guard and the `stad synth` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from stad_core.ava import read_ava_csv, read_exclusions, read_labelmap
from stad_core.config import load_config
from stad_core.errors import ConfigError, StadError
from stad_core.synth import CLASSES, SynthConfig, check_target, generate_dataset, plan_world, preset_config
from stad_core.synth.render import render_background, render_frame

REPO = Path(__file__).resolve().parents[2]
TINY = {"videos": 2, "seconds": 24}
FILES = ("annotations/train.csv", "annotations/val.csv", "annotations/label_map.pbtxt",
         "annotations/exclusions.csv", "annotations/events.csv", "dataset.json")


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def twice(tmp_path_factory) -> tuple[Path, Path, SynthConfig]:
    """The tiny preset generated twice: in this process, and again by two worker processes."""
    cfg = preset_config("tiny")
    a, b = tmp_path_factory.mktemp("a") / "ds", tmp_path_factory.mktemp("b") / "ds"
    calls: list[tuple[int, int]] = []
    generate_dataset(cfg, a, on_progress=lambda d, t: calls.append((d, t)))
    generate_dataset(cfg, b, workers=2)
    assert calls[-1] == (cfg.videos * cfg.seconds * cfg.fps,) * 2 and calls == sorted(calls)
    return a, b, cfg


def test_config_file_equals_the_demo_defaults_and_validates() -> None:
    assert load_config(SynthConfig, REPO / "configs" / "synth.yaml") == SynthConfig() == preset_config("demo")
    assert preset_config("tiny").videos == 2
    with pytest.raises(ConfigError, match="actors_min"):
        preset_config("demo", {"actors_min": 6, "actors_max": 3})
    with pytest.raises(ConfigError, match="even"):
        preset_config("demo", {"width": 161})
    with pytest.raises(ConfigError, match="unknown synth preset"):
        preset_config("huge")
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        preset_config("demo", {"colour": 1})


def test_split_and_alarm_rules() -> None:
    cfg = SynthConfig(videos=12, val_every=4)
    assert [i for i in range(12) if cfg.is_val(i)] == [3, 7, 11]
    assert [SynthConfig(videos=2).is_val(i) for i in range(2)] == [False, True]
    alarms = [cfg.has_alarm(i) for i in range(12)]
    assert sum(alarms) == 6 and any(alarms[i] for i in (3, 7, 11)) and not all(alarms[i] for i in (3, 7, 11))
    # the demo default: every other video is val, and each split gets half of its videos with an alarm
    demo = SynthConfig()
    val = [i for i in range(demo.videos) if demo.is_val(i)]
    assert demo.videos == 48 and val == list(range(1, 48, 2))
    assert sum(demo.has_alarm(i) for i in val) == sum(demo.has_alarm(i) for i in range(48) if i not in val) == 12
    assert not any(SynthConfig(alarm_fraction=0.0).has_alarm(i) for i in range(12))
    assert all(SynthConfig(alarm_fraction=1.0).has_alarm(i) for i in range(12))


def test_same_seed_gives_identical_annotations_and_pixels(twice) -> None:
    # Also proves that parallel rendering (the second copy) does not change the output.
    a, b, cfg = twice
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for i in range(cfg.videos):
        fa, fb = _frames(a / "videos" / f"{cfg.video_id(i)}.mp4"), _frames(b / "videos" / f"{cfg.video_id(i)}.mp4")
        assert fa.shape == (cfg.seconds * cfg.fps, cfg.height, cfg.width, 3)
        assert np.array_equal(fa, fb)


def test_decoded_frames_match_the_render(twice) -> None:
    a, _, cfg = twice
    world = plan_world(cfg, 1)
    bg = render_background(world.background_seed, cfg.width, cfg.height)
    frames = _frames(a / "videos" / f"{cfg.video_id(1)}.mp4")
    for i in (0, 57, 133, len(frames) - 1):
        rendered = render_frame(world, bg, i / cfg.fps)[0].astype(np.int16)
        assert np.abs(frames[i].astype(np.int16) - rendered).mean() < 4.0  # only codec error
    assert np.abs(frames[57].astype(np.int16) - frames[133]).mean() > 1.0


def test_different_seeds_give_different_data() -> None:
    w0, w1 = plan_world(SynthConfig(seed=0), 0), plan_world(SynthConfig(seed=1), 0)
    assert [e.kind for e in w0.episodes] != [e.kind for e in w1.episodes] or w0.keys != w1.keys
    assert w0.background_seed != w1.background_seed
    f0 = render_frame(w0, render_background(w0.background_seed, 160, 128), 10.0)[0]
    f1 = render_frame(w1, render_background(w1.background_seed, 160, 128), 10.0)[0]
    assert not np.array_equal(f0, f1)
    # Video i depends only on (seed, i): adding videos does not change earlier ones.
    few, many = plan_world(SynthConfig(videos=3), 1), plan_world(SynthConfig(videos=9), 1)
    assert [e.t0 for e in few.episodes] == [e.t0 for e in many.episodes]


def test_files_follow_the_ava_formats(twice) -> None:
    out, _, cfg = twice
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["config_hash"] == cfg.config_hash() and manifest["seed"] == cfg.seed
    assert manifest["splits"] == {"train": ["synth_0000"], "val": ["synth_0001"]}
    labelmap = read_labelmap(out / "annotations" / "label_map.pbtxt")
    assert labelmap.names == {c.label_id: c.name for c in CLASSES}
    assert set(labelmap.label_types.values()) == {"SHORT_TERM", "RELATIONAL", "LONG_TERM"}
    rows = 0
    for split in ("train", "val"):
        table = read_ava_csv(out / "annotations" / f"{split}.csv", kind="groundtruth")
        rows += len(table)
        assert list(table.videos) == manifest["splits"][split]
        assert set(np.unique(table.timestamp)) <= set(cfg.keyframe_seconds)
        assert ((table.boxes >= 0) & (table.boxes <= 1)).all() and (table.boxes[:, :2] < table.boxes[:, 2:]).all()
        assert set(np.unique(table.action_id)) <= set(labelmap.names)
        # One pose per (keyframe, person), and each person keeps one id (boxes move smoothly).
        pose = np.isin(table.action_id, [1, 2, 3, 4, 5])
        keys = list(zip(table.video_index[pose], table.timestamp[pose], table.person_id[pose], strict=True))
        assert len(keys) == len(set(keys))
    assert rows == manifest["totals"]["rows"]
    excluded = read_exclusions(out / "annotations" / "exclusions.csv")
    assert len(excluded) == manifest["totals"]["excluded_keyframes"] > 0  # tiny has an alarm in every video
    events = (out / "annotations" / "events.csv").read_text().splitlines()
    assert events[0] == "video_id,kind,t0,t1,actors,detail" and any(",key_pickup," in e for e in events)
    counts = manifest["totals"]["label_counts"]
    assert counts["has_key"] > 0 and counts["alerted"] > 0 and counts["stand"] > 0


def test_overwrite_guard(tmp_path: Path, twice) -> None:
    out, _, cfg = twice
    assert check_target(out, cfg) is True  # identical: nothing to do
    summary = generate_dataset(cfg, out)
    assert summary.skipped and summary.videos == cfg.videos
    with pytest.raises(StadError, match="different synthetic dataset.*--force"):
        check_target(out, preset_config("tiny", {"seed": 5}))
    other = tmp_path / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("mine")
    with pytest.raises(StadError, match="not a complete synthetic dataset"):
        check_target(other, cfg)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StadError, match="not a directory"):
        check_target(tmp_path / "file", cfg)


def test_cli_generates_refuses_and_forces(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["synth", "--out", str(out), "--preset", "tiny", "--videos", "1", "--seconds", "12", "-q"])
    assert result.exit_code == 0, result.output
    assert "1 videos" in result.output and (out / "videos" / "synth_0000.mp4").stat().st_size > 0
    first = (out / "annotations" / "train.csv").read_bytes()
    result = runner.invoke(app, ["synth", "--out", str(out), "--preset", "tiny", "--videos", "1", "--seconds", "12", "--seed", "4", "-q"])
    assert isinstance(result.exception, StadError) and "--force" in str(result.exception)
    result = runner.invoke(app, ["synth", "--out", str(out), "--preset", "tiny", "--videos", "1", "--seconds", "12",
                                 "--seed", "4", "--force", "-q", "actors_max=3", "actors_min=2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["seed"] == 4 and manifest["config"]["actors_max"] == 3
    assert (out / "annotations" / "train.csv").read_bytes() != first
