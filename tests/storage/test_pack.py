"""Packed layout: same reads as the per-video bank, a handful of objects instead of ~14 per video."""

from __future__ import annotations

import numpy as np
import pytest
from banklib import make_rows, make_spec

from stad_core.banks import BankError, DictBank, FeatureBankReader
from storage import open_reader
from storage.banks import open_bank
from storage.pack import open_packed, pack_bank


def test_pack_reads_like_the_source(bank_uri: str) -> None:
    spec = make_spec()
    clips = {f"clip{i:03d}": make_rows(i, first=0, seconds=10) for i in range(12)}
    src = open_bank(bank_uri, "a", spec, chunk_bytes=32 * 16 * 2)
    for vid, rows in clips.items():
        src.write_video(vid, rows, meta={"n": vid})
    src._new_version("unfinished", {"rows": 0})  # not packed: not complete
    dst = bank_uri + "-packed"
    packed = pack_bank(src, dst, shard_rows=100)
    assert packed.attrs["shard_rows"] == 96 and packed.attrs["chunk_rows"] == 32  # whole chunks
    reader = open_reader(dst)
    assert isinstance(reader, FeatureBankReader) and reader.videos() == sorted(clips)
    ref = DictBank(spec, clips)
    keys = [(v, i % 12) for i, v in enumerate(clips)]
    for training in (False, True):
        a = reader.gather_windows(keys, width=8, per_second=3, training=training, rng=np.random.default_rng(2))
        b = ref.gather_windows(keys, width=8, per_second=3, training=training, rng=np.random.default_rng(2))
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.mask, b.mask)
    got, want = reader.read_video("clip007"), ref.read_video("clip007")
    np.testing.assert_array_equal(got.features, want.features)
    np.testing.assert_array_equal(got.boxes, want.boxes)
    assert sorted(reader.rows_at("clip003", 4).person_ids) == sorted(ref.rows_at("clip003", 4).person_ids)
    assert open_packed(dst).video_meta("clip009") == {"n": "clip009"}
    with pytest.raises(BankError, match="packed"):
        open_bank(dst, "a", spec)
    with pytest.raises(BankError, match="already exists"):
        pack_bank(src, dst)
    with pytest.raises(BankError, match="not in packed bank"):
        reader.window("nope", 3)


def test_pack_refuses_context_banks(bank_uri: str) -> None:
    src = open_bank(bank_uri, "a", make_spec(kind="context"))
    with pytest.raises(BankError, match="only row banks"):
        pack_bank(src, bank_uri + "-packed")
