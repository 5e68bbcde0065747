"""Contract suite of the zarr feature bank, run against a local directory and memory://."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from banklib import D, make_rows, make_spec

import storage.banks as banks_mod
from stad_core.banks import (
    ActorRows,
    BankError,
    ContextMaps,
    DictBank,
    FeatureBankReader,
    FeatureBankWriter,
)
from storage.banks import open_bank
from storage.verify import verify_bank


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip(bank_uri: str, dtype: str) -> None:
    spec = make_spec(dtype=dtype)
    rows = make_rows(0, dtype=dtype)  # shuffled on purpose: the bank stores rows time-sorted
    bank = open_bank(bank_uri, "a", spec)
    assert isinstance(bank, FeatureBankReader) and isinstance(bank, FeatureBankWriter)
    bank.write_video("-5KQ66BBWC4", rows, meta={"detections_sha": "abc"})
    back = open_bank(bank_uri, "r").read_video("-5KQ66BBWC4")
    order = np.argsort(rows.timestamps, kind="stable")
    assert back.features.dtype == np.dtype(dtype) and back.features.shape == (len(rows), D)
    assert dict(bank.arrays("-5KQ66BBWC4"))["features"].dtype == np.dtype(dtype)  # created with the spec's dtype
    np.testing.assert_array_equal(back.features, rows.features[order])
    np.testing.assert_array_equal(back.boxes, rows.boxes[order])
    np.testing.assert_array_equal(back.scores, rows.scores[order])
    np.testing.assert_array_equal(back.timestamps, rows.timestamps[order])
    np.testing.assert_array_equal(back.person_ids, rows.person_ids[order])
    assert back.source == "gt"
    reader = open_bank(bank_uri, "r", spec)
    assert reader.spec == spec and reader.videos() == ["-5KQ66BBWC4"]
    assert reader.video_meta("-5KQ66BBWC4") == {"detections_sha": "abc"}


def test_spec_mismatch_names_the_fields(bank_uri: str) -> None:
    open_bank(bank_uri, "a", make_spec()).write_video("a", make_rows(0))
    other = make_spec(dtype="float32", checkpoint_sha256="f" * 64)
    with pytest.raises(BankError, match=r"differing fields: dtype: 'float16' != 'float32'; checkpoint_sha256"):
        open_bank(bank_uri, "a", other)
    with pytest.raises(BankError, match="differing fields"):
        open_bank(bank_uri, "r", other)
    with pytest.raises(BankError, match="already exists"):
        open_bank(bank_uri, "w-", make_spec())
    assert open_bank(bank_uri, "a", make_spec()).videos() == ["a"]  # nothing was lost


def test_open_errors(bank_uri: str) -> None:
    with pytest.raises(BankError, match="no bank|not a stad"):
        open_bank(bank_uri, "r")
    with pytest.raises(BankError, match="needs a BankSpec"):
        open_bank(bank_uri, "a")
    with pytest.raises(BankError, match="unknown codec"):
        open_bank(bank_uri, "a", make_spec(), codec="snappy")
    with pytest.raises(BankError, match="mode"):
        open_bank(bank_uri, "x")  # type: ignore[arg-type]
    bank = open_bank(bank_uri, "w-", make_spec(), codec="zstd:1")
    assert bank.codec == "zstd:1" and open_bank(bank_uri, "r").codec == "zstd:1"


def test_open_does_not_list_videos(bank_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bank = open_bank(bank_uri, "a", make_spec())
    for i in range(3):
        bank.write_video(f"v{i}", make_rows(i, seconds=5))

    def refuse(*_: object) -> list[str]:
        raise AssertionError("open_bank listed the store")

    monkeypatch.setattr(banks_mod, "_list_dir", refuse)
    assert open_bank(bank_uri, "r").spec == make_spec()


def test_incomplete_video_is_invisible_and_rewritable(bank_uri: str) -> None:
    bank = open_bank(bank_uri, "a", make_spec())
    bank.write_video("done", make_rows(1))
    # What a writer killed mid-write leaves: a version with arrays but complete=false.
    group, _ = bank._new_version("dead", {"rows": 5})
    bank._array(group, "features", np.ones((5, D), np.float16), np.dtype(np.float16), (4, D), ("row", "channel"))
    reader = open_bank(bank_uri, "r")
    assert reader.videos() == ["done"] and not reader.is_complete("dead")
    with pytest.raises(BankError, match="no complete version"):
        reader.read_video("dead")
    assert reader.stale_versions() == ["videos/dead/v1"]
    bank.write_video("dead", make_rows(2))
    assert reader.videos() == ["dead", "done"] and reader.video_info("dead").version == "v2"
    assert reader.stale_versions() == []


def test_unfinished_rewrite_keeps_the_previous_version(bank_uri: str) -> None:
    bank = open_bank(bank_uri, "a", make_spec())
    rows = make_rows(3)
    bank.write_video("v", rows)
    bank._new_version("v", {"rows": 1})  # a rewrite that never finished
    reader = open_bank(bank_uri, "r")
    assert reader.video_info("v").version == "v1"
    assert len(reader.read_video("v")) == len(rows)
    assert bank.gc() == ["videos/v/v2"] and reader.video_info("v").version == "v1"


def test_rewrite_replaces_and_is_idempotent(bank_uri: str) -> None:
    bank = open_bank(bank_uri, "a", make_spec())
    bank.write_video("v", make_rows(4))
    first = bank.read_video("v")
    bank.write_video("v", make_rows(4))
    again = bank.read_video("v")
    np.testing.assert_array_equal(first.features, again.features)
    assert bank._versions("v") == [2]  # the old version is gone
    stale = open_bank(bank_uri, "r")
    stale.read_video("v")  # caches the current version's state
    bank.write_video("v", make_rows(5, seconds=10))
    with pytest.raises(BankError, match=r"re-written or deleted .*refresh\(\)"):
        stale.window("v", 950)  # never silently reads the deleted version as zeros
    stale.refresh()
    assert stale.window("v", 905).mask.any()
    reader = open_bank(bank_uri, "r")
    np.testing.assert_array_equal(reader.read_video("v").timestamps, np.sort(make_rows(5, seconds=10).timestamps))
    bank.delete_video("v")
    assert bank.videos() == [] and not bank.is_complete("v")


def test_empty_video(bank_uri: str) -> None:
    bank = open_bank(bank_uri, "a", make_spec())
    bank.write_video("none", ActorRows.empty(D, "float16"))
    assert bank.videos() == ["none"] and len(bank.read_video("none")) == 0
    win = bank.window("none", 5)
    assert win.features.shape == (300, D) and not win.mask.any()
    assert len(bank.rows_at("none", 5)) == 0


def test_windows_match_the_dict_bank(bank_uri: str) -> None:
    spec = make_spec()
    videos = {"a": make_rows(6, max_per_second=12), "b": make_rows(7, first=0, seconds=40)}
    bank = open_bank(bank_uri, "a", spec, chunk_bytes=32 * D * 2)  # 32-row chunks: windows span several
    for vid, rows in videos.items():
        bank.write_video(vid, rows)
    reader, ref = open_bank(bank_uri, "r"), DictBank(spec, videos)
    assert reader.preload() == 2
    keys = [("a", 900), ("a", 950), ("b", 3), ("a", 951), ("b", 39), ("a", 1019)]
    for vid, t in keys:
        z, d = reader.window(vid, t), ref.window(vid, t)
        np.testing.assert_array_equal(z.rows, d.rows)
        np.testing.assert_array_equal(z.mask, d.mask)
        np.testing.assert_array_equal(z.features, d.features)
        np.testing.assert_array_equal(z.timestamps, d.timestamps)
    for training in (False, True):
        zb = reader.gather_windows(keys, training=training, rng=np.random.default_rng(1))
        db = ref.gather_windows(keys, training=training, rng=np.random.default_rng(1))
        np.testing.assert_array_equal(zb.features, db.features)
        np.testing.assert_array_equal(zb.mask, db.mask)
        np.testing.assert_array_equal(zb.timestamps, db.timestamps)
    assert reader.cache.hits > reader.cache.misses  # neighbouring windows reuse decoded chunks


def test_rows_at_returns_the_keyframe_actors(bank_uri: str) -> None:
    rows = make_rows(8, dtype="float32")
    bank = open_bank(bank_uri, "a", make_spec(dtype="float32"))
    bank.write_video("v", rows)
    for t in (900, 950, 1019, 5000):
        got = bank.rows_at("v", t)
        want = np.sort(rows.person_ids[rows.timestamps == t])
        assert sorted(got.person_ids.tolist()) == want.tolist()
        assert np.all(got.timestamps == t)
        for pid, feat in zip(got.person_ids, got.features, strict=True):
            np.testing.assert_array_equal(feat, rows.features[rows.person_ids == pid][0])


def test_context_bank(bank_uri: str) -> None:
    spec = make_spec(kind="context")
    rng = np.random.default_rng(0)
    maps = ContextMaps(rng.random((7, D, 2, 3)).astype(np.float16), np.arange(902.0, 909.0)[::-1].copy())
    bank = open_bank(bank_uri, "a", spec, chunk_bytes=4 * D * 6 * 2)
    bank.write_context("v", maps)
    reader = open_bank(bank_uri, "r")
    np.testing.assert_array_equal(reader.context("v", 904.0), maps.maps[4])
    back = reader.read_context("v")
    assert back.maps.shape == (7, D, 2, 3) and back.timestamps.tolist() == list(range(902, 909))
    with pytest.raises(BankError, match="no context map at t=950"):
        reader.context("v", 950)
    with pytest.raises(BankError, match="no actor rows"):
        reader.window("v", 904)
    with pytest.raises(BankError, match="use write_video|use write_context|expects"):
        bank.write_video("w", make_rows(0))
    with pytest.raises(BankError, match=r"expects \[K, 16, 2, 3\]"):
        bank.write_context("w", ContextMaps(np.zeros((2, D, 3, 3), np.float32), np.arange(2.0)))
    with pytest.raises(BankError, match=r"video 'w': context maps are float32, the bank stores float16"):
        bank.write_context("w", ContextMaps(maps.maps.astype(np.float32), maps.timestamps))
    assert reader.videos() == ["v"]


def test_actor_context_bank_has_rows(bank_uri: str) -> None:
    bank = open_bank(bank_uri, "a", make_spec(kind="actor_context", roi_recipe="acar_hr2o_depth1"))
    bank.write_video("v", make_rows(9))
    assert bank.window("v", 950).mask.any()
    with pytest.raises(BankError, match="no context maps"):
        bank.context("v", 950)


def test_bad_input_is_refused_and_nothing_is_lost(bank_uri: str) -> None:
    bank = open_bank(bank_uri, "a", make_spec())
    good = make_rows(10)
    bank.write_video("v", good)
    nan = make_rows(10)
    nan.features[3, 2] = np.nan
    bad_inputs = {
        r"features have shape .*\[R, 16\]": make_rows(10, dim=8),
        "features are int32, the bank stores float16": ActorRows(
            np.ones((2, D), np.int32), np.zeros((2, 4)), np.ones(2), np.zeros(2), np.zeros(2, np.int64)
        ),
        "features are float32, the bank stores float16": make_rows(10, dtype="float32"),
        r"boxes has shape \(3, 4\)": ActorRows(
            good.features[:4], good.boxes[:3], good.scores[:4], good.timestamps[:4], good.person_ids[:4]
        ),
        "NaN": nan,
        "person_ids must be integers": ActorRows(good.features, good.boxes, good.scores, good.timestamps, good.scores),
    }
    for message, rows in bad_inputs.items():
        with pytest.raises(BankError, match=message):
            bank.write_video("v", rows)
    for bad_id in ("", "a/b", "__x", ".."):
        with pytest.raises(BankError, match="invalid video id"):
            bank.write_video(bad_id, good)
    with pytest.raises(BankError, match="read-only"):
        open_bank(bank_uri, "r").write_video("w", good)
    with pytest.raises(BankError, match="is not in bank"):
        bank.window("unknown", 950)
    assert bank.videos() == ["v"] and len(bank.read_video("v")) == len(good)


def test_writes_are_checked_against_the_spec_dtype(bank_uri: str) -> None:
    """The spec's dtype is the only one: features of another dtype are refused, never cast."""
    spec = make_spec(dtype="float32")
    bank = open_bank(bank_uri, "a", spec)
    half = make_rows(14, dtype="float16")
    for target, name in ((bank, bank_uri), (DictBank(spec), "DictBank")):
        expected = rf"bank {re.escape(name)}.*video 'v': features are float16, the bank stores float32"
        with pytest.raises(BankError, match=expected):
            target.write_video("v", half)
        assert not target.is_complete("v")
    bank.write_video("v", make_rows(14, dtype="float32"))
    assert dict(bank.arrays("v"))["features"].dtype == np.float32


def test_video_opens_as_xarray_dataset(bank_uri: str) -> None:
    bank = open_bank(bank_uri, "a", make_spec())
    rows = make_rows(11)
    bank.write_video("v", rows)
    ds = bank.open_dataset("v")
    assert ds["features"].dims == ("row", "channel") and ds["boxes"].dims == ("row", "corner")
    assert ds.sizes["row"] == len(rows) and ds.attrs["kind"] == "long_term"
    np.testing.assert_array_equal(ds["timestamp"].values, np.sort(rows.timestamps))


def test_verify_and_sizes(bank_uri: str) -> None:
    bank = open_bank(bank_uri, "a", make_spec())
    bank.write_video("v", make_rows(12))
    bank.write_video("w", ActorRows.empty(D, "float16"))
    assert verify_bank(bank) == []
    raw, stored = bank.sizes("v")
    assert raw > 0 and 0 < stored < raw  # ReLU-like features compress


def test_verify_reports_damaged_chunks(tmp_path: Path) -> None:
    uri = str(tmp_path / "bank.zarr")
    bank = open_bank(uri, "a", make_spec(), chunk_bytes=32 * D * 2)
    for vid in ("a", "b", "c"):
        bank.write_video(vid, make_rows(13, seconds=100))
    chunks = tmp_path / "bank.zarr" / "videos"
    (chunks / "a" / "v1" / "features" / "c" / "1" / "0").write_bytes(b"garbage")
    (chunks / "b" / "v1" / "features" / "c" / "2" / "0").unlink()
    problems = {p.video_id: p.problem for p in verify_bank(open_bank(uri, "r"))}
    assert set(problems) == {"a", "b"}
    assert "unreadable" in problems["a"] and "1 of" in problems["b"] and "missing" in problems["b"]
