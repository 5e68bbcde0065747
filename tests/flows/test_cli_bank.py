"""`stad bank ...` end to end on a small local bank (typer's CliRunner, no subprocess)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "storage"))
from banklib import make_rows, make_spec  # noqa: E402

from flows.cli import app  # noqa: E402
from stad_core.errors import StadError  # noqa: E402
from storage.banks import open_bank  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("banks")
    bank = open_bank(str(root / "lfb.zarr"), "a", make_spec())
    bank.write_video("vidA", make_rows(0, seconds=90))
    bank.write_video("vidB", make_rows(1, seconds=30))
    bank._new_version("dead", {"rows": 0})  # a writer that never finished
    return root


def _ok(*args: str) -> str:
    result = runner.invoke(app, ["bank", *args], catch_exceptions=False, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_ls_info_videos(bank_dir: Path) -> None:
    uri = str(bank_dir / "lfb.zarr")
    assert "lfb.zarr" in _ok("ls", str(bank_dir)) and "long_term" in _ok("ls", str(bank_dir))
    info = _ok("info", uri)
    for text in ("slowfast_r50", "float16", "blosc-zstd:1", "videos (complete)", "ratio", "dead"):
        assert text in info
    videos = _ok("videos", uri)
    assert "vidA" in videos and "900..989" in videos and "incomplete" in videos


def test_show_stats_nn(bank_dir: Path) -> None:
    uri = str(bank_dir / "lfb.zarr")
    show = _ok("show", uri, "vidA", "--row", "0")
    assert "900s |" in show and "zero_fraction" in show and "person_id" in show
    stats = _ok("stats", uri)
    assert "features" in stats and "BloscCodec" in stats
    nn = _ok("nn", uri, "vidA", "3", "--k", "2")
    assert nn.count("vid") >= 3  # title + two neighbours


def test_verify_and_gc(bank_dir: Path) -> None:
    uri = str(bank_dir / "lfb.zarr")
    out = _ok("verify", uri)
    assert "ok: 2 complete videos" in out and "stale version" in out
    assert "removed 1 stale" in _ok("gc", uri)
    assert "stale" not in _ok("verify", uri)


def test_errors_are_stad_errors(bank_dir: Path) -> None:
    result = runner.invoke(app, ["bank", "show", str(bank_dir / "lfb.zarr"), "nope"])
    assert result.exit_code != 0 and isinstance(result.exception, StadError)
    assert "not in bank" in str(result.exception)
    result = runner.invoke(app, ["bank", "info", str(bank_dir / "missing")])
    assert isinstance(result.exception, StadError) and "no bank" in str(result.exception)


def test_verify_names_damaged_chunks_and_repair_deletes_them(tmp_path: Path) -> None:
    import json

    from storage.banks import ROOT_KEY

    uri = str(tmp_path / "lfb.zarr")
    bank = open_bank(uri, "a", make_spec(), chunk_bytes=32 * 16 * 2)
    for seed, vid in enumerate(("vidA", "vidB")):
        bank.write_video(vid, make_rows(seed, seconds=60))
    chunk = tmp_path / "lfb.zarr" / "videos" / "vidB" / "v1" / "features" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[40:61] = bytes(21)  # bytes overwritten inside a features chunk
    chunk.write_bytes(bytes(data))

    result = runner.invoke(app, ["bank", "verify", uri], terminal_width=200)
    assert result.exit_code == 1 and isinstance(result.exception, StadError)
    assert "video vidB: array features, chunk videos/vidB/v1/features/c/1/0: unreadable" in result.output
    assert "checksum" in result.output and "vidA" not in result.output
    assert f"stad bank repair {uri} vidB" in str(result.exception)
    assert "ok: 2 complete videos checked, metadata checked (--quick)" in _ok("verify", "--quick", uri)

    assert "deleted 1 video(s)" in _ok("repair", uri, "vidB")
    assert "ok: 1 complete videos checked" in _ok("verify", uri)
    result = runner.invoke(app, ["bank", "repair", uri, "nope"])
    assert isinstance(result.exception, StadError) and "not in bank" in str(result.exception)

    old = tmp_path / "old.zarr"  # a bank from before checksums: no "checksum" attribute
    old_bank = open_bank(str(old), "a", make_spec(), checksum=False)
    old_bank.write_video("vidC", make_rows(3, seconds=30))
    doc = json.loads((old / "zarr.json").read_text())
    del doc["attributes"][ROOT_KEY]["checksum"]
    (old / "zarr.json").write_text(json.dumps(doc))
    out = _ok("verify", str(old))
    assert "no checksums: 1 of 1 videos (vidC)" in out and "ok: 1 complete videos" in out
