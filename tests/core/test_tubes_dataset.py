"""A tube ground truth written as per-frame AVA-style files (what tubes_ingest hands to ingest/train)."""

from __future__ import annotations

import numpy as np

from stad_core.ava import read_ava_csv, read_labelmap
from stad_core.tubes.dataset import stad_video_id, time_frame, write_tube_annotations
from stad_core.tubes.gt import TubeGroundTruth, restrict_frames


def test_frames_become_fractional_keyframes_with_boxless_frames_in_val(tmp_path) -> None:
    tube = np.array([[f, 10, 20, 50, 100] for f in range(3, 7)], dtype=np.float64)
    gt = TubeGroundTruth(["run", "jump"], [["sport/v_a"]], [["sport/v_b"]], {"sport/v_a": 8, "sport/v_b": 8},
                         {"sport/v_a": (200, 100), "sport/v_b": (200, 100)},
                         {"sport/v_a": {1: [tube]}, "sport/v_b": {0: [tube]}})
    files = write_tube_annotations(gt, tmp_path, {"sport/v_a": 25.0, "sport/v_b": 25.0}, frame_stride=2)
    train = read_ava_csv(files.train_csv, kind="groundtruth")
    # frames 1, 3, 5, 7 are keyframes; the tube covers 3 and 5 -> two rows at (f - 1) / 25 s
    assert train.videos.tolist() == ["v_a"] and train.timestamp.tolist() == [0.08, 0.16]
    np.testing.assert_allclose(train.boxes[0], [0.1, 0.1, 0.5, 0.5])
    assert train.action_id.tolist() == [2, 2] and train.person_id.tolist() == [10_000, 10_000]  # label 1, tube 0
    val = read_ava_csv(files.val_csv, kind="groundtruth", allow_boxless_rows=True)
    assert sorted(t for _, t in val.boxless) == [0.0, 0.24]  # frames 1 and 7 have no actor: still keyframes
    assert read_labelmap(files.labelmap).names == {1: "run", 2: "jump"}
    assert time_frame(np.array([0.08, 0.24]), 25.0).tolist() == [3, 7] and stad_video_id("sport/v_b") == "v_b"
    cut = restrict_frames(gt, {"sport/v_b": np.array([1, 5, 7])})
    assert cut.gttubes["sport/v_b"][0][0][:, 0].tolist() == [5] and len(cut.gttubes["sport/v_a"][1][0]) == 4
