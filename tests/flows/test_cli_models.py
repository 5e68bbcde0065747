"""`stad models`: the backbone catalogue through the real typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def test_models_lists_shapes_params_flops_and_families() -> None:
    result = runner.invoke(app, ["models", "--json", "x3d_s", "vit_b_videomae"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    x3d, vit = rows
    assert x3d["name"] == "x3d_s" and (x3d["frames"], x3d["step"]) == (13, 6)
    assert x3d["map_shapes"] == [[432, 13, 16, 16]] and 2.0 < x3d["params_m"] < 2.2 and x3d["gflops"] > 10
    assert x3d["families"] == ["pyslowfast", "mmaction2"]
    assert vit["map_shapes"] == [[768, 8, 16, 16]] and 86 < vit["params_m"] < 87 and "videomae" in vit["families"]
    table = runner.invoke(app, ["models", "x3d_m"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "x3d_m" in table.output and "16x5" in table.output


def test_unknown_name_is_a_one_line_error() -> None:
    result = runner.invoke(app, ["models", "resnet9000"])
    assert result.exit_code != 0 and "unknown backbone 'resnet9000'" in str(result.exception or result.output)
