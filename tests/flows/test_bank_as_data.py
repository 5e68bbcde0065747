"""Banks as data: the labelled xarray view (select by video, time and person), `stad bank ls` with
full paths, rows and compression (and --json), `bank stats` feature statistics, `nn --other-videos`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "storage"))
from banklib import D, make_rows, make_spec  # noqa: E402

from flows.cli import app  # noqa: E402
from stad_core.banks import ContextMaps  # noqa: E402
from storage.banks import open_bank  # noqa: E402

DEEP = "a_rather_long_experiment_folder_name/with/a-second-level-that-is-also-quite-long"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("banks")
    bank = open_bank(str(root / DEEP / "long_term.zarr"), "a", make_spec())
    bank.write_video("vidA", make_rows(0, seconds=40))
    bank.write_video("vidB", make_rows(1, seconds=30))
    return root


def _cli(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(app, ["bank", *args], catch_exceptions=False, terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def test_dataset_has_coordinates_and_selects_by_time_and_person(root: Path) -> None:
    bank = open_bank(str(root / DEEP / "long_term.zarr"))
    ds = bank.open_dataset()
    assert set(ds.indexes["row"].names) == {"video", "timestamp", "person_id"}
    assert list(ds["corner"].values) == ["x1", "y1", "x2", "y2"] and ds.sizes["channel"] == D
    rows = bank.read_video("vidB")
    t = float(rows.timestamps[len(rows) // 2])
    at_t = ds.sel(video="vidB", timestamp=t)
    expected = np.nonzero(rows.timestamps == t)[0]
    np.testing.assert_array_equal(at_t["features"].values, rows.features[expected])
    person = int(rows.person_ids[expected[0]])
    one = ds.sel(video="vidB", timestamp=t, person_id=person)
    np.testing.assert_array_equal(one["boxes"].values.reshape(-1, 4)[0], rows.boxes[expected[0]])
    assert float(one["boxes"].sel(corner="x2").values.reshape(-1)[0]) == pytest.approx(rows.boxes[expected[0], 2])
    # The selection the issue reported as a KeyError.
    masked = ds.sel(row=ds.timestamp == t)
    assert masked.sizes["row"] == int((bank.read_video("vidA").timestamps == t).sum()) + len(expected)
    single = bank.open_dataset("vidA")
    assert set(np.unique(single["video"].values)) == {"vidA"}

    ctx = open_bank(str(root / "context.zarr"), "a", make_spec("context"))
    maps = np.random.default_rng(0).random((5, D, 2, 3)).astype(np.float16)
    ctx.write_context("vidA", ContextMaps(maps, np.arange(900, 905, dtype=np.float64)))
    cds = ctx.open_dataset()
    np.testing.assert_array_equal(cds.sel(video="vidA", timestamp=902)["maps"].values, maps[2])


def test_ls_keeps_paths_whole_and_lists_rows_and_compression(root: Path) -> None:
    out = _cli("ls", str(root), width=80)
    assert f"{DEEP}/long_term.zarr" in out, out  # never cut or folded, even on an 80-column terminal
    for column in ("rows", "uncompressed", "on disk", "ratio", "codec"):
        assert column in out, column
    found = json.loads(_cli("ls", str(root), "--json"))
    lt = next(b for b in found if b["kind"] == "long_term")
    bank = open_bank(str(root / DEEP / "long_term.zarr"))
    assert lt["bank"] == f"{DEEP}/long_term.zarr" and lt["path"] == str((root / DEEP / "long_term.zarr").resolve())
    assert lt["rows"] == sum(len(bank.read_video(v)) for v in bank.videos()) and lt["videos"] == 2
    assert lt["ratio"] > 0 and lt["stored_bytes"] > 0


def test_stats_has_feature_statistics(root: Path) -> None:
    from storage.browse import feature_stats

    bank = open_bank(str(root / DEEP / "long_term.zarr"))
    stats = feature_stats(bank)
    allrows = np.concatenate([bank.read_video(v).features for v in bank.videos()]).astype(np.float64)
    assert stats.rows == len(allrows)
    assert stats.mean == pytest.approx(allrows.mean(), rel=1e-6) and stats.max == pytest.approx(allrows.max())
    assert stats.zero_fraction == pytest.approx((allrows == 0).mean())
    np.testing.assert_allclose(stats.channel_std, allrows.std(axis=0), rtol=1e-5, atol=1e-9)
    out = _cli("stats", str(root / DEEP / "long_term.zarr"), width=160)
    for text in ("feature mean / std", "row L2 norm", "dead channels", "NaN / inf values"):
        assert text in out, text


def test_nn_other_videos(root: Path) -> None:
    uri = str(root / DEEP / "long_term.zarr")
    out = _cli("nn", uri, "vidA", "3", "--k", "4", "--other-videos", width=160)
    body = out[out.index("cosine"):]
    assert body.count("vidB") == 4 and "vidA" not in body
