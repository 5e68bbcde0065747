"""Window semantics (stad_core.banks), checked on DictBank -- the zarr bank shares the code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from banklib import make_rows, make_spec

from stad_core.banks import (
    ActorRows,
    BankError,
    DictBank,
    FeatureBankReader,
    FeatureBankWriter,
    eval_seed,
    plan_window,
    second_index,
    window_seconds,
)


def _rows_at_seconds(counts: dict[int, int]) -> ActorRows:
    ts = np.concatenate([np.full(n, float(s)) for s, n in sorted(counts.items())])
    r = len(ts)
    feats = np.arange(r * 16, dtype=np.float32).reshape(r, 16)
    return ActorRows(feats, np.tile([0.1, 0.1, 0.5, 0.5], (r, 1)), np.ones(r), ts, np.arange(r), "gt")


def test_second_index_buckets_by_floor() -> None:
    index = second_index(np.array([10.0, 10.99, 12.0, 12.5, 12.999]))
    assert index.first_second == 10
    assert index.offsets.tolist() == [0, 2, 2, 5]
    assert index.row_range(11, 13) == (2, 5)
    assert index.row_range(-5, 100) == (0, 5)
    assert second_index(np.zeros(0)).offsets.tolist() == [0]


def test_window_covers_t_minus_half_to_t_plus_half() -> None:
    assert window_seconds(902.0, 60) == (872, 932)
    assert window_seconds(902.7, 60) == (872, 932)  # floor(t) is the centre second
    assert window_seconds(10, 5) == (8, 13)


def test_window_takes_all_rows_when_few_and_masks_the_rest() -> None:
    bank = DictBank(make_spec(dtype="float32"), {"v": _rows_at_seconds({100: 2, 101: 7, 102: 0, 103: 5})})
    win = bank.window("v", 101, width=4, per_second=5)  # seconds 99..102
    assert win.features.shape == (20, 16) and win.mask.shape == (20,)
    assert win.mask.reshape(4, 5).sum(1).tolist() == [0, 2, 5, 0]
    # second 100 has 2 rows: both, in order, in slots 5 and 6
    assert win.rows[5:7].tolist() == [0, 1]
    assert np.all(win.features[~win.mask] == 0) and np.all(np.isnan(win.timestamps[~win.mask]))
    assert np.array_equal(win.features[win.mask], bank.read_video("v").features[win.rows[win.mask]])
    # second 101 (7 rows) contributes 5 distinct rows of that second, in time order
    picked = win.rows[10:15]
    assert len(set(picked.tolist())) == 5 and np.all(np.diff(picked) > 0)
    assert np.all(win.timestamps[10:15] == 101)


@pytest.mark.parametrize("t", [900, 905, 1019, 1030, 800, 2000])
def test_window_at_video_edges(t: int) -> None:
    rows = make_rows(1, first=900, seconds=120, shuffle=False)
    bank = DictBank(make_spec(), {"v": rows})
    win = bank.window("v", t, width=60, per_second=5)
    first, stop = window_seconds(t, 60)
    secs = np.arange(first, stop).repeat(5)
    outside = (secs < 900) | (secs >= 1020)
    assert not win.mask[outside].any()  # seconds outside the video are masked, not padded
    counts = np.bincount(rows.timestamps.astype(int) - 900, minlength=120)
    for i, s in enumerate(range(first, stop)):
        n = counts[s - 900] if 900 <= s < 1020 else 0
        assert win.mask[i * 5 : (i + 1) * 5].sum() == min(n, 5)
        assert np.all(win.timestamps[i * 5 : (i + 1) * 5][win.mask[i * 5 : (i + 1) * 5]] == s)


def test_eval_sampling_is_deterministic_and_keyed() -> None:
    rows = make_rows(2, max_per_second=12)
    bank = DictBank(make_spec(), {"v": rows, "w": rows})
    a = bank.window("v", 950)
    assert np.array_equal(a.rows, bank.window("v", 950).rows)
    assert np.array_equal(a.rows, DictBank(make_spec(), {"v": rows}).window("v", 950).rows)
    assert not np.array_equal(a.rows, bank.window("w", 950).rows)  # seeded by the whole key
    assert eval_seed("v", 950) == eval_seed("v", 950.0) != eval_seed("v", 951)
    assert eval_seed("abc", 902) == 7909718095426950765  # stable across runs and machines


def test_training_sampling_follows_the_rng() -> None:
    bank = DictBank(make_spec(), {"v": make_rows(3, max_per_second=12)})
    a = bank.window("v", 950, training=True, rng=np.random.default_rng(5))
    b = bank.window("v", 950, training=True, rng=np.random.default_rng(5))
    c = bank.window("v", 950, training=True, rng=np.random.default_rng(6))
    assert np.array_equal(a.rows, b.rows) and not np.array_equal(a.rows, c.rows)
    assert np.array_equal(a.mask, c.mask)  # which slots are filled does not depend on the draw


def test_subsets_are_uniform_over_rows() -> None:
    index = second_index(np.full(10, 5.0))
    rng = np.random.default_rng(0)
    hits = np.zeros(10)
    for _ in range(2000):
        rows, mask = plan_window(index, 5, width=1, per_second=3, rng=rng)
        hits[rows[mask]] += 1
    assert np.allclose(hits / 2000, 0.3, atol=0.05)


def test_gather_equals_windows_and_unpacks() -> None:
    bank = DictBank(make_spec(), {"v": make_rows(4), "w": make_rows(5)})
    keys = [("v", 930), ("w", 960), ("v", 931)]
    feats, mask = bank.gather_windows(keys, width=10, per_second=3)
    assert feats.shape == (3, 30, 16) and mask.shape == (3, 30)
    for i, (v, t) in enumerate(keys):
        w = bank.window(v, t, width=10, per_second=3)
        assert np.array_equal(feats[i], w.features) and np.array_equal(mask[i], w.mask)
    tf, tm = bank.gather_windows(keys, width=10, per_second=3).to_torch()
    assert tuple(tf.shape) == (3, 30, 16) and tm.dtype == torch.bool
    empty = bank.gather_windows([], width=10, per_second=3)
    assert empty.features.shape == (0, 30, 16)


def test_dict_bank_is_a_reader_and_writer_and_checks_input() -> None:
    bank = DictBank(make_spec(), {"v": make_rows(0)})
    assert isinstance(bank, FeatureBankReader) and isinstance(bank, FeatureBankWriter)
    with pytest.raises(BankError, match=r"features have shape \(3, 8\).*\[R, 16\]"):
        bank.write_video("x", make_rows(0, dim=8).take(np.arange(3)))
    with pytest.raises(BankError, match="not in this bank"):
        bank.window("nope", 3)
    with pytest.raises(BankError, match="positive"):
        bank.window("v", 950, width=0)


def test_spec_diff_and_validation() -> None:
    a = make_spec()
    assert a.diff(a) == []
    assert a.diff(make_spec(dtype="float32", backbone="x")) == [
        "dtype: 'float16' != 'float32'", "backbone: 'slowfast_r50' != 'x'",
    ]
    with pytest.raises(ValueError, match="context_grid"):
        make_spec(kind="context", context_grid=None)
    with pytest.raises(ValueError, match="only for context"):
        make_spec(context_grid=(1, 1))
    assert type(a).from_attrs(make_spec(kind="context").to_attrs()).context_grid == (2, 3)
