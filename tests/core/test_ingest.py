"""The ingest stage: manifest and rejects from a videos folder and annotation files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from stad_core.ava import AvaFormatError
from stad_core.config import load_config
from stad_core.errors import ConfigError, InputFileError
from stad_core.ingest import (
    MANIFEST_SCHEMA,
    IngestConfig,
    build_manifest,
    manifest_entries,
    read_manifest,
    read_rejects,
)
from stad_core.video import encode_video


def tiny_frames(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8)


def write_csv(path: Path, rows: list[tuple[str, int]]) -> Path:
    """AVA ground truth: one person box with action 12 per (video, second)."""
    lines = [f"{vid},{t:04d},0.100,0.200,0.500,0.900,12,0" for vid, t in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small folder of videos + annotations covering every reject kind."""
    root = tmp_path_factory.mktemp("ingest")
    videos = root / "videos"
    videos.mkdir()
    encode_video(videos / "vidA.mp4", tiny_frames(40), fps=10)  # 4.0 s
    encode_video(videos / "vidA.avi", tiny_frames(10), fps=10, codec="mpeg4")  # same stem: duplicate
    encode_video(videos / "vidB.mkv", tiny_frames(30), fps=10)  # 3.0 s
    encode_video(videos / "both.mp4", tiny_frames(10), fps=10)
    encode_video(videos / "extra.mp4", tiny_frames(25), fps=10)  # in no annotation file
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    (videos / "notes.txt").write_text("not a video")
    write_csv(root / "train.csv", [("vidA", 0), ("vidA", 1), ("vidA", 3), ("vidA", 3), ("vidA", 7), ("both", 1)])
    write_csv(root / "val.csv", [("vidB", 1), ("vidB", 2), ("broken", 1), ("ghost", 5), ("both", 0)])
    (root / "excluded.csv").write_text("vidB,0002\nghost,0005\n")
    return root


def config_for(root: Path, out: Path, **values: object) -> IngestConfig:
    base = dict(
        videos_dir=str(root / "videos"),
        train_csv=str(root / "train.csv"),
        val_csv=str(root / "val.csv"),
        exclusions=(str(root / "excluded.csv"),),
        out_dir=str(out),
    )
    base.update(values)
    return IngestConfig(**base)


def rejects_by(table) -> dict[tuple[str, str], dict]:
    return {(r["video_id"], r["kind"]): r for r in table.to_pylist()}


def test_excluded_keyframes_stay_for_the_banks_by_default(dataset: Path, tmp_path: Path) -> None:
    # An excluded keyframe is never scored, but its bank rows are part of every long-term window
    # around it, so by default the manifest keeps it (train and evaluate read the exclusions).
    result = build_manifest(config_for(dataset, tmp_path))
    rows = {r["video_id"]: r for r in read_manifest(result.manifest_path).to_pylist()}
    assert rows["vidB"]["keyframes"] == [1.0, 2.0] and rows["vidB"]["num_keyframes"] == 2
    assert ("vidB", "excluded") not in rejects_by(read_rejects(result.rejects_path))


def test_manifest_from_annotations(dataset: Path, tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    result = build_manifest(config_for(dataset, tmp_path, bank_excluded=False),
                            on_progress=lambda d, t: progress.append((d, t)))

    manifest = read_manifest(result.manifest_path)
    assert manifest.schema.names == MANIFEST_SCHEMA.names
    rows = {r["video_id"]: r for r in manifest.to_pylist()}
    assert manifest.column("video_id").to_pylist() == ["vidA", "vidB"]  # sorted
    a, b = rows["vidA"], rows["vidB"]
    assert a["path"] == str(dataset / "videos" / "vidA.mp4")  # mp4 preferred over avi
    assert (a["split"], a["num_frames"], a["fps"], a["duration"]) == ("train", 40, 10.0, 4.0)
    assert (a["width"], a["height"], a["codec"]) == (64, 48, "h264")
    assert a["keyframes"] == [0.0, 1.0, 3.0] == a["keyframe_times"]  # duplicates merged; 7 rejected
    assert b["split"] == "val" and b["keyframes"] == [1.0] and b["num_keyframes"] == 1

    rejects = rejects_by(read_rejects(result.rejects_path))
    assert set(rejects) == {
        ("vidA", "duplicate_file"),
        ("vidA", "keyframe_outside_video"),
        ("vidB", "excluded"),
        ("both", "split_conflict"),
        ("broken", "unreadable_video"),
        ("ghost", "missing_video"),
        ("extra", "unannotated"),
    }
    assert rejects[("vidA", "keyframe_outside_video")]["timestamps"] == [7.0]
    assert "4.000 s" in rejects[("vidA", "keyframe_outside_video")]["reason"]
    assert rejects[("vidA", "duplicate_file")]["path"].endswith("vidA.avi")
    assert rejects[("vidB", "excluded")]["timestamps"] == [2.0]
    assert rejects[("ghost", "missing_video")]["path"] is None
    assert rejects[("ghost", "missing_video")]["split"] == "val"
    assert "cannot open" in rejects[("broken", "unreadable_video")]["reason"]

    assert (result.num_videos, result.num_keyframes, result.num_rejects) == (2, 4, 7)
    assert result.videos_per_split == {"train": 1, "val": 1}
    assert result.rejects_per_kind["missing_video"] == 1
    assert progress[-1] == (3, 3)  # vidA, vidB and broken were probed
    meta = manifest.schema.metadata
    assert meta[b"stad.content_hash"].decode() == result.content_hash
    assert meta[b"stad.config_hash"].decode() == result.config_hash

    entries = manifest_entries(manifest)
    assert [e.video_id for e in entries] == ["vidA", "vidB"]
    assert entries[0].info.num_frames == 40 and entries[0].keyframe_times.dtype == np.float64


def test_content_hash_is_stable_and_tracks_content(dataset: Path, tmp_path: Path) -> None:
    first = build_manifest(config_for(dataset, tmp_path / "a"))
    second = build_manifest(config_for(dataset, tmp_path / "b"))
    assert first.content_hash == second.content_hash
    assert first.config_hash != second.config_hash  # out_dir differs
    assert pq.read_table(first.manifest_path).equals(pq.read_table(second.manifest_path))
    third = build_manifest(config_for(dataset, tmp_path / "c", bank_excluded=False))
    assert third.content_hash != first.content_hash  # vidB loses its excluded keyframe 2
    assert read_manifest(first.manifest_path).column("num_keyframes").to_pylist() == [3, 2]
    assert read_manifest(third.manifest_path).column("num_keyframes").to_pylist() == [3, 1]


def test_range_mode_with_time_offset(dataset: Path, tmp_path: Path) -> None:
    # Annotation seconds 900..904 on videos cut at 900 s: second 904 is past the 4 s of vidA.
    result = build_manifest(
        config_for(dataset, tmp_path, keyframes="range", keyframe_range=(900, 904), time_offset=900,
                   exclusions=(), unlisted_split="holdout", verify_decode=False)
    )
    rows = {r["video_id"]: r for r in read_manifest(result.manifest_path).to_pylist()}
    assert set(rows) == {"vidA", "vidB", "extra"}
    assert rows["vidA"]["keyframes"] == [900.0, 901.0, 902.0, 903.0]
    assert rows["vidA"]["keyframe_times"] == [0.0, 1.0, 2.0, 3.0]
    assert rows["vidB"]["keyframes"] == [900.0, 901.0, 902.0]
    assert rows["extra"]["split"] == "holdout" and rows["extra"]["keyframe_times"] == [0.0, 1.0, 2.0]
    rejects = rejects_by(read_rejects(result.rejects_path))
    assert rejects[("vidA", "keyframe_outside_video")]["timestamps"] == [904.0]
    assert "time_offset 900" in rejects[("vidA", "keyframe_outside_video")]["reason"]
    assert ("extra", "unannotated") not in rejects


def test_annotated_keyframes_outside_the_range_are_rejected(dataset: Path, tmp_path: Path) -> None:
    result = build_manifest(config_for(dataset, tmp_path, keyframe_range=(1, 3)))
    rows = {r["video_id"]: r for r in read_manifest(result.manifest_path).to_pylist()}
    assert rows["vidA"]["keyframes"] == [1.0, 3.0]
    rejects = rejects_by(read_rejects(result.rejects_path))
    # Each keyframe is reported once, under the first reason that applies (range before video).
    assert rejects[("vidA", "keyframe_outside_range")]["timestamps"] == [0.0, 7.0]
    assert ("vidA", "keyframe_outside_video") not in rejects


def test_video_with_every_keyframe_rejected(dataset: Path, tmp_path: Path) -> None:
    result = build_manifest(config_for(dataset, tmp_path, keyframe_range=(5, 9)))
    # vidA: 7 is in range but past its end; vidB: 1 and 2 are out of range. Nothing is left.
    assert read_manifest(result.manifest_path).num_rows == 0
    kinds = {(r["video_id"], r["kind"]) for r in read_rejects(result.rejects_path).to_pylist()}
    assert {("vidA", "no_keyframes"), ("vidB", "no_keyframes"), ("vidA", "keyframe_outside_video")} <= kinds
    assert result.num_videos == 0 and result.num_keyframes == 0


def test_bad_inputs_stop_with_the_file_named_and_keep_old_outputs(dataset: Path, tmp_path: Path) -> None:
    good = build_manifest(config_for(dataset, tmp_path))
    before = Path(good.manifest_path).read_bytes()
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("vidA,0001,0.1,0.2,0.5,0.9,12,0\nvidA,xx,0.1,0.2\n")
    with pytest.raises(AvaFormatError, match="bad.csv:2"):
        build_manifest(config_for(dataset, tmp_path, train_csv=str(bad_csv)))
    assert Path(good.manifest_path).read_bytes() == before
    with pytest.raises(InputFileError, match="videos folder not found"):
        build_manifest(config_for(dataset, tmp_path, videos_dir=str(tmp_path / "none")))
    with pytest.raises(InputFileError, match="not found"):
        build_manifest(config_for(dataset, tmp_path, val_csv=str(tmp_path / "missing.csv")))


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="keyframe_range"):
        load_config(IngestConfig, None, ["keyframes=range"])
    with pytest.raises(ConfigError, match="start > end"):
        load_config(IngestConfig, None, ["keyframe_range=[10, 2]"])
    cfg = load_config(IngestConfig, None, ["video_extensions=[MP4, mkv]", "keyframe_range=[902, 1798]"])
    assert cfg.video_extensions == (".mp4", ".mkv") and cfg.keyframe_range == (902, 1798)
    assert load_config(IngestConfig, None, ["exclusions=ex.csv"]).exclusions == ("ex.csv",)


def test_shipped_config_is_valid() -> None:
    cfg = load_config(IngestConfig, Path(__file__).resolve().parents[2] / "configs" / "ingest.yaml")
    assert cfg.keyframe_range == (902, 1798) and cfg.keyframes == "annotations"


def test_read_manifest_rejects_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="manifest not found"):
        read_manifest(tmp_path / "manifest.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("hello")
    with pytest.raises(InputFileError, match="parquet"):
        read_manifest(junk)
    import pyarrow as pa

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"video_id": ["a"]}), other)
    with pytest.raises(InputFileError, match="missing columns"):
        read_manifest(other)


@pytest.mark.shared_data
def test_real_ava_annotations_and_videos(shared_data: Path, tmp_path: Path) -> None:
    # Real AVA rows name videos we do not have; stand the real demo clips in for two of them
    # (links, not copies) and place their annotated seconds inside the clips with time_offset.
    videos = tmp_path / "videos"
    videos.mkdir()
    mm = shared_data / "mmaction2"
    (videos / "0f39OWEqJ24.mp4").symlink_to(mm / "demo_demo.mp4")  # 10 s
    (videos / "_-Z6wFjXtGQ.mp4").symlink_to(mm / "demo_demo_spatiotemporal_det.mp4")  # 9.5 s
    cfg = IngestConfig(
        videos_dir=str(videos),
        train_csv=str(mm / "tests_data_ava_dataset_ava_sample.csv"),
        val_csv=str(shared_data / "edgeface" / "ava_val_v2.2_head342.csv"),
        exclusions=(str(mm / "tests_data_ava_dataset_ava_excluded_timestamps_sample.csv"),),
        labelmap=str(shared_data / "activitynet" / "ava_action_list_v2.1_for_activitynet_2018.pbtxt.txt"),
        keyframe_range=(902, 1798),
        time_offset=895,
        bank_excluded=False,
        out_dir=str(tmp_path / "out"),
    )
    result = build_manifest(cfg)
    rows = read_manifest(result.manifest_path).to_pylist()
    assert [r["video_id"] for r in rows] == ["0f39OWEqJ24"]
    assert rows[0]["keyframes"] == [902.0] and rows[0]["keyframe_times"] == [7.0]  # 903 excluded
    assert rows[0]["fps"] == 28.0 and rows[0]["num_frames"] == 280 and rows[0]["split"] == "train"
    rejects = rejects_by(read_rejects(result.rejects_path))
    assert rejects[("0f39OWEqJ24", "excluded")]["timestamps"] == [903.0]
    assert ("_-Z6wFjXtGQ", "no_keyframes") in rejects  # its only keyframe (902) is excluded
    missing = rejects[("1j20qq1JyX4", "missing_video")]
    assert missing["split"] == "val" and missing["timestamps"][0] == 902.0 and len(missing["timestamps"]) > 50
    assert any("3_" in w for w in result.warnings)  # the real malformed person id is surfaced
    meta = read_manifest(result.manifest_path).schema.metadata
    assert meta[b"stad.num_classes"] == b"60"


def test_invalid_video_ids_are_rejected_at_ingest(tmp_path: Path) -> None:
    """`..mp4` (id ".") and `...mp4` (id "..") used to pass ingest, detect and finetune and fail only
    at extract: they are rejects now, before anything is probed, with the rule as the reason."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("..mp4", "...mp4", "ok.mp4"):
        encode_video(videos / name, tiny_frames(20), fps=10)
    write_csv(tmp_path / "train.csv", [(".", 1), ("..", 1), ("ok", 1), ("__meta", 1)])
    progress: list[tuple[int, int]] = []
    config = IngestConfig(videos_dir=str(videos), train_csv=str(tmp_path / "train.csv"), out_dir=str(tmp_path / "out"))
    result = build_manifest(config, on_progress=lambda d, t: progress.append((d, t)))
    assert read_manifest(result.manifest_path).column("video_id").to_pylist() == ["ok"]
    assert progress[-1] == (1, 1)  # only ok.mp4 was probed
    rejects = rejects_by(read_rejects(result.rejects_path))
    assert set(rejects) == {(".", "invalid_video_id"), ("..", "invalid_video_id"), ("__meta", "invalid_video_id")}
    dot = rejects[(".", "invalid_video_id")]
    assert dot["path"] == str(videos / "..mp4") and dot["split"] == "train" and dot["timestamps"] == [1.0]
    assert "not '.' or '..'" in dot["reason"] and rejects[("__meta", "invalid_video_id")]["path"] is None
    # Files no annotation names are checked too (range mode would take them).
    ranged = build_manifest(config.model_copy(update={"keyframes": "range", "keyframe_range": (0, 1), "train_csv": None}))
    assert set(rejects_by(read_rejects(ranged.rejects_path))) == {(".", "invalid_video_id"), ("..", "invalid_video_id")}
    assert read_manifest(ranged.manifest_path).column("video_id").to_pylist() == ["ok"]
