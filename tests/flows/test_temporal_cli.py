"""`stad synth --task temporal` and `stad eval-charades` (the official script's number from files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from flows.cli import app
from stad_core.temporal.annotations import read_charades_classes, read_charades_csv
from stad_core.temporal.metric import charades_localize
from stad_core.temporal.submission import format_submission


def test_synth_temporal_then_eval_charades(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "tsyn"
    result = runner.invoke(app, ["synth", "--task", "temporal", "--preset", "tiny", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "videos").iterdir())[:1] == ["tsyn_0000.mp4"]
    classes = read_charades_classes(out / "Charades_v1_classes.txt")
    test = read_charades_csv(out / "Charades_v1_test.csv", classes)
    assert len(classes) == 6 and len(test) == 2 and all(v.length == 8.0 for v in test)
    rng = np.random.default_rng(0)
    preds = {(v.video_id, j): rng.random(6) for v in test for j in range(1, 26)}
    sub = tmp_path / "submission.txt"
    sub.write_text(format_submission((v, j, s) for (v, j), s in preds.items()))
    expected = charades_localize(test, preds, 6)
    result = runner.invoke(app, ["eval-charades", "-g", str(out / "Charades_v1_test.csv"), "-s", str(sub),
                                 "--classes", str(out / "Charades_v1_classes.txt")])
    assert result.exit_code == 0, result.output
    assert f"Per-Frame mAP: {100 * expected.map:.2f}" in result.output
    bad = runner.invoke(app, ["synth", "--task", "nope", "-o", str(tmp_path / "x")])
    assert bad.exit_code != 0
