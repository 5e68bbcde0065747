"""`stad export` + `stad infer` end to end: a tiny trained workspace, a bundle, then an unannotated
copy of the val video -> CSV, tracks JSON and an annotated MP4 whose scores, boxes, frame count and
size match what the pipeline (its evaluate stage, its detector) gives on the same video."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from infer_testlib import MARGIN, build_trained_workspace, detector_config  # noqa: E402

from flows.cli import app  # noqa: E402
from storage.workspace import StageRef  # noqa: E402

VAL = "synth_0002"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, StageRef]]]:
    root = tmp_path_factory.mktemp("infer")
    yield root, build_trained_workspace(root, heads=("lfb_max",), acfb=True)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    # `stad` turns a StadError into one line on stderr (flows.cli.main); the runner keeps the exception.
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def _export(root: Path, refs: dict[str, StageRef], model: str, name: str) -> Path:
    out = root / name
    code, output = _cli("export", str(out), "-w", str(root / "ws"), "--model", refs[model].key,
                        "--detector", "tiny_fasterrcnn", "--detector-weights", str(root / "detector.pt"),
                        "--detector-threshold", "1.0")
    assert code == 0, output
    return out


def _val_video(refs: dict[str, StageRef]) -> Path:
    return Path(refs["synth"].uri) / "videos" / f"{VAL}.mp4"


def _csv_scores(path: Path) -> dict[tuple[str, int, int], float]:
    """{(timestamp, box rounded, action): score} of an AVA CSV (8 columns, or 9 with the person id)."""
    out = {}
    with open(path) as handle:
        for row in csv.reader(handle):
            if row[0] not in (VAL, "clip"):
                continue
            key = (int(row[1]), tuple(round(float(v), 4) for v in row[2:6]), int(row[6]))
            out[key] = float(row[-1])
    return out


def test_export_then_infer_matches_the_pipeline(trained: tuple[Path, dict[str, StageRef]], tmp_path: Path) -> None:
    from stad_core.detection import PersonDetector
    from stad_core.video import VideoReader, probe
    from storage.tables import read_detections

    root, refs = trained
    bundle = _export(root, refs, "train:lfb_max", "bundle")
    assert {p.name for p in bundle.iterdir()} >= {"bundle.json", "head.pt", "backbone.pt", "backbone.json",
                                                   "detector.pt", "labelmap.pbtxt"}
    videos = tmp_path / "new"
    videos.mkdir()
    shutil.copyfile(_val_video(refs), videos / "clip.mp4")  # no annotation anywhere names it
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    code, output = _cli("infer", str(videos), "--model", str(bundle), "--out", str(out), "--margin", str(MARGIN),
                        "--threshold", "0.0", "-q")
    # The unreadable file is reported by name, the other video still gets its outputs.
    assert code == 1 and "broken.mp4" in output and "1 of 2 videos failed" in output, output
    csv_path, json_path, mp4 = out / "clip.csv", out / "clip.tracks.json", out / "clip.mp4"
    assert csv_path.is_file() and json_path.is_file() and mp4.is_file()

    # Scores: equal to the evaluate stage's on the same video (same boxes, same long-term windows).
    evaluated = _csv_scores(Path(refs["evaluate:lfb_max"].uri) / "detections.csv")
    inferred = _csv_scores(csv_path)
    assert evaluated and set(evaluated) == set(inferred)
    for key, score in evaluated.items():
        assert abs(inferred[key] - score) <= 2e-6, key

    # Boxes: the bundle's detector on the new file gives exactly the detect stage's boxes.
    info = probe(videos / "clip.mp4")
    stamps = list(range(MARGIN, int(info.duration) - MARGIN + 1))
    found = PersonDetector.from_config(detector_config(root / "detector.pt")).detect_keyframes(
        videos / "clip.mp4", "clip", stamps)
    stage_boxes = {d.key.timestamp: d.boxes for d in read_detections(Path(refs["detect"].uri) / "detections.parquet")[VAL]}
    doc = json.loads(json_path.read_text())
    json_boxes: dict[int, list[list[float]]] = {}
    track_ids = set()
    for track in doc["tracks"]:
        track_ids.add(track["track_id"])
        for second in track["seconds"]:
            json_boxes.setdefault(int(second["t"]), []).append(second["box"])
            assert len(second["actions"]) <= 3 and all(a["score"] >= 0.0 for a in second["actions"])
    for d in found:
        t = d.key.timestamp
        np.testing.assert_allclose(np.sort(np.asarray(json_boxes[t]), axis=0), np.sort(d.boxes, axis=0), atol=1e-6)
        np.testing.assert_allclose(d.boxes, stage_boxes[t], atol=1e-6)
    # Track ids fill the CSV's person column (9 columns: AVA ground-truth layout + score).
    rows = list(csv.reader(open(csv_path)))
    assert all(len(r) == 9 for r in rows) and {int(r[7]) for r in rows} == track_ids and min(track_ids) >= 0

    # The MP4 plays back with the source's frame count, size and rate, and shows the boxes.
    made = probe(mp4)
    assert (made.num_frames, made.width, made.height) == (info.num_frames, info.width, info.height)
    assert made.fps == pytest.approx(info.fps, rel=1e-3)
    t0 = float(stamps[0])
    with VideoReader(mp4) as a, VideoReader(videos / "clip.mp4") as b:
        drawn, plain = a.frames_at([t0])[0].numpy().astype(int), b.frames_at([t0])[0].numpy().astype(int)
    x1, y1, x2, y2 = (np.asarray(json_boxes[stamps[0]][0]) * [info.width, info.height, info.width, info.height]).round().astype(int)
    x1, x2 = min(max(x1, 1), info.width - 2), min(max(x2, 1), info.width - 2)
    y_mid = (y1 + y2) // 2
    edge = np.abs(drawn[y_mid, [x1, x2]] - plain[y_mid, [x1, x2]]).max()
    assert edge > 40, "no box drawn where the detector found a person"
    assert np.abs(drawn - plain).mean() < 20  # the rest of the picture is the source

    # Resumable: a re-run skips the finished video and leaves its files alone.
    before = csv_path.stat().st_mtime_ns
    (videos / "broken.mp4").unlink()
    code, output = _cli("infer", str(videos), "--model", str(bundle), "--out", str(out), "--margin", str(MARGIN),
                        "--threshold", "0.0", "-q")
    assert code == 0 and "skipped" in output, output
    assert csv_path.stat().st_mtime_ns == before


def test_acfb_bundle_carries_its_acar_head(trained: tuple[Path, dict[str, StageRef]], tmp_path: Path) -> None:
    from storage.bundle import load_bundle

    root, refs = trained
    bundle = _export(root, refs, "acfb", "bundle-acfb")
    assert (bundle / "acar.pt").is_file() and load_bundle(bundle).head_name == "acfb"
    out = tmp_path / "out"
    code, output = _cli("infer", str(_val_video(refs)), "--model", str(bundle), "--out", str(out), "--margin",
                        str(MARGIN), "--no-video", "-q")
    assert code == 0, output
    doc = json.loads((out / f"{VAL}.tracks.json").read_text())
    assert doc["video"]["model"] == "acfb" and doc["tracks"] and not (out / f"{VAL}.mp4").exists()
    assert len(list(csv.reader(open(out / f"{VAL}.csv")))) == 12 * sum(len(t["seconds"]) for t in doc["tracks"])

    # A bundle whose pieces disagree is refused, naming what is wrong.
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "acar.pt").unlink()
    code, output = _cli("infer", str(_val_video(refs)), "--model", str(broken), "--out", str(out), "-q")
    assert code == 1 and "refused" in output and "acar.pt is missing" in output, output
    shutil.copytree(bundle, broken, dirs_exist_ok=True)
    manifest = json.loads((broken / "bundle.json").read_text())
    manifest["extract"]["num_frames"] = 4  # preprocessing that is not what the bank specs were built with
    (broken / "bundle.json").write_text(json.dumps(manifest))
    code, output = _cli("infer", str(_val_video(refs)), "--model", str(broken), "--out", str(out), "-q")
    assert code == 1 and "edited after export" in output, output
    lfb = _export(root, refs, "train:lfb_max", "bundle-lfb")
    shutil.copyfile(lfb / "head.pt", broken / "head.pt")
    shutil.copyfile(bundle / "bundle.json", broken / "bundle.json")
    code, output = _cli("infer", str(_val_video(refs)), "--model", str(broken), "--out", str(out), "-q")
    assert code == 1 and "head: head.pt changed since export" in output, output


def test_infer_flow_on_a_workspace_inbox(trained: tuple[Path, dict[str, StageRef]], prefect_harness: str,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment's layout: <workspace>/bundle on <workspace>/inbox -> <workspace>/infer; a second
    run skips what the first finished."""
    from flows.infer import infer_flow
    from storage.stages.infer import InferConfig

    monkeypatch.setenv("STAD_GPUS", "0")
    root, refs = trained
    ws = tmp_path / "deployed"
    shutil.copytree(_export(root, refs, "train:lfb_max", "bundle-flow"), ws / "bundle")
    (ws / "inbox").mkdir()
    shutil.copyfile(_val_video(refs), ws / "inbox" / "cam1.mp4")
    first = infer_flow(InferConfig(margin=MARGIN, video=False), workspace=str(ws))
    assert first.counts == {"videos": 1, "ran": 1, "skipped": 0, "actors": first.counts["actors"]}
    assert first.counts["actors"] > 0 and (ws / "infer" / "cam1.csv").is_file()
    again = infer_flow({"margin": MARGIN, "video": False}, workspace=str(ws))  # a deployment run's partial config
    assert again.counts["skipped"] == 1 and again.key == first.key
