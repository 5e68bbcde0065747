"""Bank integrity on real zarr banks on disk: chunk checksums, one error naming the damaged chunk,
``check_bank`` (full and quick), ``repair_videos``, and banks written before checksums."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from banklib import D, make_rows, make_spec

from stad_core.banks import BankError
from stad_core.train.data import prediction_samples, training_samples
from storage.banks import ROOT_KEY, open_bank
from storage.pack import pack_bank
from storage.verify import check_bank, repair_videos, verify_bank

CHUNK_BYTES = 32 * D * 2  # 32 fp16 rows per features chunk: every video has several chunks


def _bank(tmp_path: Path, *, codec: str = "blosc-zstd:1", checksum: bool = True) -> tuple[str, dict]:
    uri = str(tmp_path / "lfb.zarr")
    bank = open_bank(uri, "a", make_spec(), codec=codec, chunk_bytes=CHUNK_BYTES, checksum=checksum)
    rows = {vid: make_rows(seed, seconds=100) for seed, vid in enumerate(("a", "b", "c"))}
    for vid, r in rows.items():
        bank.write_video(vid, r)
    return uri, rows


def _chunk(uri: str, video: str, array: str = "features", key: str = "c/1/0") -> Path:
    path = Path(uri) / "videos" / video / "v1" / array / key
    assert path.is_file(), path
    return path


def _flip(path: Path, at: int | None = None, n: int = 21) -> None:
    """Overwrite ``n`` bytes in the middle of a chunk file (as in the issue: 21 bytes)."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at : at + n] = bytes(255 - b for b in data[at : at + n])
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])


def _expect_named(exc: pytest.ExceptionInfo[BankError], uri: str, video: str, array: str, chunk: str) -> None:
    text = str(exc.value)
    for part in (uri, f"video {video!r}", f"array {array!r}", chunk, f"stad bank repair {uri} {video}",
                 "stad run extract --force"):
        assert part in text, (part, text)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # one error, not three tracebacks


@pytest.mark.parametrize("codec", ["blosc-zstd:1", "none"])
@pytest.mark.parametrize("damage", [_flip, _truncate])
def test_damaged_features_chunk_is_named_by_verify_and_readers(tmp_path: Path, codec: str, damage) -> None:
    uri, rows = _bank(tmp_path, codec=codec)
    damage(_chunk(uri, "b"))
    chunk = "videos/b/v1/features/c/1/0"

    problems = verify_bank(open_bank(uri, "r"))
    assert [(p.video_id, p.array, p.chunk) for p in problems] == [("b", "features", chunk)]
    assert "unreadable" in problems[0].problem

    with pytest.raises(BankError) as exc:  # whole-video read (zarr path): training's sample listing
        open_bank(uri, "r").read_video("b")
    _expect_named(exc, uri, "b", "features", chunk)
    reader = open_bank(uri, "r")
    t = float(np.sort(rows["b"].timestamps)[40])  # a keyframe whose rows sit in chunk 1
    with pytest.raises(BankError) as exc:  # window gathers (raw chunk path): training and evaluation batches
        reader.gather_windows([("a", 950.0), ("b", t)], width=4)
    _expect_named(exc, uri, "b", "features", chunk)
    with pytest.raises(BankError) as exc:
        reader.window("b", t, width=2)
    _expect_named(exc, uri, "b", "features", chunk)
    # the other videos still read, bit for bit
    np.testing.assert_array_equal(reader.read_video("c").features, rows["c"].take(np.argsort(
        rows["c"].timestamps, kind="stable")).features)


def test_training_and_evaluation_surface_the_one_error(tmp_path: Path) -> None:
    uri, _ = _bank(tmp_path)
    _flip(_chunk(uri, "a", key="c/0/0"))
    for read in (lambda b: training_samples(b, {}), prediction_samples):
        with pytest.raises(BankError) as exc:
            read(open_bank(uri, "r"))
        _expect_named(exc, uri, "a", "features", "videos/a/v1/features/c/0/0")


def test_damaged_small_array_is_named(tmp_path: Path) -> None:
    uri, _ = _bank(tmp_path)
    _flip(_chunk(uri, "c", "timestamps", "c/0"), n=4)
    with pytest.raises(BankError) as exc:
        open_bank(uri, "r").window("c", 950.0)
    _expect_named(exc, uri, "c", "timestamps", "videos/c/v1/timestamps/c/0")
    assert [(p.video_id, p.array) for p in verify_bank(open_bank(uri, "r"))] == [("c", "timestamps")]


def test_verify_lists_every_damaged_chunk_and_quick_skips_decoding(tmp_path: Path) -> None:
    uri, _ = _bank(tmp_path)
    _flip(_chunk(uri, "a", key="c/0/0"))
    _truncate(_chunk(uri, "a", key="c/2/0"))
    _chunk(uri, "c", key="c/1/0").unlink()
    result = check_bank(open_bank(uri, "r"))
    assert [(p.video_id, p.chunk) for p in result.problems] == [
        ("a", "videos/a/v1/features/c/0/0"), ("a", "videos/a/v1/features/c/2/0"), ("c", "videos/c/v1/features/c/1/0")]
    assert "missing" in result.problems[2].problem and result.damaged_videos == ["a", "c"]
    assert result.chunks > 0 and result.no_checksums == []
    quick = check_bank(open_bank(uri, "r"), quick=True)  # metadata only: sees the missing chunk alone
    assert [p.video_id for p in quick.problems] == ["c"] and quick.chunks == 0


def test_repair_deletes_only_those_videos_and_unmarks_the_stage(tmp_path: Path) -> None:
    stage = tmp_path / "extract" / "cfg-key"
    stage.mkdir(parents=True)
    (stage / "_stage.json").write_text("{}")
    uri, _ = _bank(stage)
    _flip(_chunk(uri, "b"))
    before = {v: open_bank(uri, "r").read_video(v) for v in ("a", "c")}
    bank = open_bank(uri, "a")
    with pytest.raises(BankError, match="not in bank"):
        repair_videos(bank, ["b", "nope"])
    assert bank.is_complete("b") and (stage / "_stage.json").exists()  # refused: nothing deleted
    with pytest.raises(BankError, match="read-only"):
        repair_videos(open_bank(uri, "r"), ["b"])
    done = repair_videos(bank, ["b"])
    assert done.deleted == ["b"] and done.stage_record == str(stage / "_stage.json")
    assert not (stage / "_stage.json").exists()  # the next plain extract run re-runs the stage ...
    reader = open_bank(uri, "r")
    assert reader.videos() == ["a", "c"] and not reader.is_complete("b")  # ... and redoes only 'b'
    for vid, rows in before.items():
        np.testing.assert_array_equal(reader.read_video(vid).features, rows.features)
    assert verify_bank(reader) == []


def test_old_bank_without_checksums_still_reads(tmp_path: Path) -> None:
    uri, rows = _bank(tmp_path, checksum=False)
    meta = Path(uri) / "zarr.json"  # as written before checksums: no "checksum" attribute at all
    doc = json.loads(meta.read_text())
    del doc["attributes"][ROOT_KEY]["checksum"]
    meta.write_text(json.dumps(doc))
    bank = open_bank(uri, "r")
    for vid, r in rows.items():
        assert np.array_equal(np.sort(bank.read_video(vid).timestamps), np.sort(r.timestamps))
    assert bank.gather_windows([("a", 950.0), ("b", 960.0)]).mask.any()
    result = check_bank(bank)
    assert result.problems == [] and result.no_checksums == ["a", "b", "c"]
    # A truncated blosc frame (SystemError / RuntimeError deep in the codec) is the same one error.
    _truncate(_chunk(uri, "a"))
    with pytest.raises(BankError) as exc:
        open_bank(uri, "r").read_video("a")
    _expect_named(exc, uri, "a", "features", "videos/a/v1/features/c/1/0")
    # Videos written into it from now on carry checksums.
    writer = open_bank(uri, "a")
    writer.write_video("d", make_rows(9, seconds=20))
    after = check_bank(open_bank(uri, "r"))
    assert after.no_checksums == ["a", "b", "c"] and after.damaged_videos == ["a"]


def test_packed_bank_names_the_damaged_inner_chunk(tmp_path: Path) -> None:
    uri, _ = _bank(tmp_path)
    packed = str(tmp_path / "packed.zarr")
    pack_bank(open_bank(uri, "r"), packed, shard_rows=1 << 12)
    _flip(Path(packed) / "features" / "c" / "0" / "0", at=100)
    from storage.pack import open_packed

    with pytest.raises(BankError) as exc:
        open_packed(packed).read_video("a")
    text = str(exc.value)
    assert packed in text and "video 'a'" in text and "array 'features'" in text
    assert "features/c/0/0 (inner chunk 0)" in text and "pack again" in text


@pytest.mark.slow
def test_workspace_train_names_the_chunk_and_repair_redoes_one_video(tmp_path: Path) -> None:
    """The issue end to end (tiny synthetic dataset, ~10 s on CPU): a flipped features chunk of an
    extract output stops training with the one error; repair + a plain extract run redo that video only."""
    from stad_core.stage_configs import demo_config
    from storage.stages.runner import run_stage

    ws = str(tmp_path / "ws")
    cfg = demo_config("tiny")
    for name in ("synth", "ingest", "detect", "finetune", "extract"):
        ref = run_stage(name, getattr(cfg, name), ws)
    uri = ref.path("long_term.zarr")
    video = sorted(open_bank(uri, "r").videos())[0]
    _flip(_chunk(uri, video, key="c/0/0"), at=100)
    train = cfg.train.model_copy(update={"head": "linear", "epochs": 1})
    with pytest.raises(BankError) as exc:
        run_stage("train", train, ws)
    _expect_named(exc, uri, video, "features", f"videos/{video}/v1/features/c/0/0")
    assert [(p.video_id, p.array) for p in verify_bank(open_bank(uri, "r"))] == [(video, "features")]

    repair_videos(open_bank(uri, "a"), [video])
    again = run_stage("extract", cfg.extract, ws)
    assert not again.reused and (again.counts["ran"], again.counts["skipped"]) == (1, 1)
    assert verify_bank(open_bank(uri, "r")) == []
    assert run_stage("train", train, ws).counts["epochs"] == 1
