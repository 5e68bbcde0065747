"""Person proposals: the real MMAction2 pickle and its CSV twin, thresholds, safety, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from stad_core.ava import (
    AvaFormatError,
    AvaTable,
    KeyframeDetections,
    KeyframeKey,
    group_by_keyframe,
    read_proposals,
    write_proposals,
)

PKL = "mmaction2/tests_data_ava_dataset_ava_proposals_sample.pkl"
CSV = "mmaction2/tests_data_ava_dataset_ava_proposals_sample.csv"


@pytest.mark.shared_data
def test_pickle_matches_its_csv_twin(shared_data: Path) -> None:
    from_pkl = read_proposals(shared_data / PKL)
    from_csv = read_proposals(shared_data / CSV)
    assert list(from_pkl) == list(from_csv) == [
        KeyframeKey("0f39OWEqJ24", 902),
        KeyframeKey("0f39OWEqJ24", 903),
        KeyframeKey("_-Z6wFjXtGQ", 902),
    ]
    with (shared_data / PKL).open("rb") as fh:
        raw = pickle.load(fh)  # the test trusts this file; the reader does not need to
    for key, dets in from_pkl.items():
        ref = raw[key.image_key]
        assert dets.boxes.shape == (ref.shape[0], 4) and dets.boxes.dtype == np.float32
        np.testing.assert_array_equal(dets.boxes, ref[:, :4].astype(np.float32))
        np.testing.assert_array_equal(dets.scores, ref[:, 4].astype(np.float32))
        np.testing.assert_array_equal(from_csv[key].boxes, dets.boxes)
        np.testing.assert_array_equal(from_csv[key].scores, dets.scores)
    assert [len(d) for d in from_pkl.values()] == [1, 1, 3]


@pytest.mark.shared_data
def test_threshold_and_keep_top_box(shared_data: Path) -> None:
    dets = read_proposals(shared_data / PKL, score_threshold=0.9)
    assert len(dets[KeyframeKey("_-Z6wFjXtGQ", 902)]) == 2  # the 0.281325 box is dropped
    # Above every score: MMAction2 keeps each keyframe's best box...
    top = read_proposals(shared_data / PKL, score_threshold=0.999)
    assert [len(d) for d in top.values()] == [1, 1, 1]
    np.testing.assert_allclose(top[KeyframeKey("_-Z6wFjXtGQ", 902)].scores, [0.996238], rtol=1e-6)
    # ...unless asked not to; keyframes then stay with no boxes.
    none = read_proposals(shared_data / PKL, score_threshold=0.999, keep_top_box=False)
    assert list(none) == list(top) and [len(d) for d in none.values()] == [0, 0, 0]


def test_write_read_round_trip_pickle_and_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    dets = [
        KeyframeDetections(KeyframeKey("vid", t), np.sort(rng.random((n, 4)), axis=1)[:, [0, 1, 2, 3]], rng.random(n))
        for t, n in [(902, 3), (1798, 1), (905, 2)]
    ]
    for name in ("p.pkl", "p.csv"):
        write_proposals(tmp_path / name, dets)
        back = read_proposals(tmp_path / name)
        assert list(back) == sorted(d.key for d in dets)
        for d in dets:
            np.testing.assert_array_equal(back[d.key].boxes, d.boxes)
            np.testing.assert_array_equal(back[d.key].scores, d.scores)
    with (tmp_path / "p.pkl").open("rb") as fh:
        raw = pickle.load(fh)
    assert sorted(raw) == ["vid,0902", "vid,0905", "vid,1798"] and raw["vid,0902"].shape == (3, 5)


def test_eight_column_results_merge_repeated_boxes(tmp_path: Path) -> None:
    text = (
        "v,0902,0.1,0.1,0.5,0.5,12,0.30\n"
        "v,0902,0.1,0.1,0.5,0.5,17,0.80\n"
        "v,0902,0.6,0.1,0.9,0.5,12,0.40\n"
        "v,903,0.1,0.1,0.5,0.5,12,0.20\n"
    )
    (tmp_path / "r.csv").write_text(text)
    dets = read_proposals(tmp_path / "r.csv")
    first = dets[KeyframeKey("v", 902)]
    np.testing.assert_allclose(first.boxes, [[0.1, 0.1, 0.5, 0.5], [0.6, 0.1, 0.9, 0.5]])
    np.testing.assert_allclose(first.scores, [0.8, 0.4])
    assert len(dets[KeyframeKey("v", 903)]) == 1


def test_group_by_keyframe_keeps_file_order_and_rejects_fractions() -> None:
    table = AvaTable.from_arrays(
        ["b", "a", "b", "a"], [902, 902, 902, 903], [[0, 0, 1, 1], [0, 0, 0.5, 0.5], [0.2, 0, 1, 1], [0, 0, 1, 1]],
        score=[0.1, 0.2, 0.9, 0.3],
    )
    grouped = group_by_keyframe(table)
    assert list(grouped) == [KeyframeKey("a", 902), KeyframeKey("a", 903), KeyframeKey("b", 902)]
    np.testing.assert_allclose(grouped[KeyframeKey("b", 902)].scores, [0.1, 0.9])
    frac = AvaTable.from_arrays(["a"], [902.5], [[0, 0, 1, 1]], score=[0.5])
    with pytest.raises(AvaFormatError, match="whole second"):
        group_by_keyframe(frac)


def test_group_by_keyframe_keeps_person_ids() -> None:
    # Ground truth: one row per (box, action); the repeated box keeps its first row's id.
    gt = AvaTable.from_arrays(
        ["v", "v", "v", "v", "w"], [902, 902, 902, 903, 902],
        [[0, 0, 0.5, 1], [0.5, 0, 1, 1], [0, 0, 0.5, 1], [0, 0, 0.5, 1], [0, 0, 1, 1]],
        action_id=[12, 17, 80, 12, 1], person_id=[4, 7, 9, 4, 0],
    )
    grouped = group_by_keyframe(gt)
    first = grouped[KeyframeKey("v", 902)]
    np.testing.assert_allclose(first.boxes, [[0, 0, 0.5, 1], [0.5, 0, 1, 1]])
    assert first.person_ids.dtype == np.int64 and first.person_ids.tolist() == [4, 7]
    assert grouped[KeyframeKey("v", 903)].person_ids.tolist() == [4]
    assert grouped[KeyframeKey("w", 902)].person_ids.tolist() == [0]
    # No person id column (7-column files, detections): None, not a row of -1s.
    no_ids = AvaTable.from_arrays(["v", "v"], [902, 902], [[0, 0, 1, 1], [0, 0, 0.5, 0.5]], score=[0.3, 0.9])
    assert all(d.person_ids is None for d in group_by_keyframe(no_ids).values())


def test_above_and_select_keep_person_ids_aligned() -> None:
    dets = KeyframeDetections(KeyframeKey("v", 902), np.tile([[0, 0, 1, 1]], (4, 1)), [0.9, 0.2, 0.7, 0.1],
                              person_ids=[10, 11, 12, 13])
    kept = dets.above(0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7]) and kept.person_ids.tolist() == [10, 12]
    assert dets.above(0.95).person_ids.tolist() == [10]  # keep-top-box keeps the top box's id
    assert dets.above(0.95, keep_top_box=False).person_ids.tolist() == []
    assert dets.select(np.array([3, 1])).person_ids.tolist() == [13, 11]
    no_ids = KeyframeDetections(KeyframeKey("v", 902), dets.boxes, dets.scores)
    assert no_ids.above(0.5).person_ids is None
    with pytest.raises(ValueError, match="4 boxes but 3 person ids"):
        KeyframeDetections(dets.key, dets.boxes, dets.scores, person_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="must be integers"):
        KeyframeDetections(dets.key, dets.boxes, dets.scores, person_ids=[0.5, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="below -1"):
        KeyframeDetections(dets.key, dets.boxes, dets.scores, person_ids=[1, -2, 3, 4])


class Evil:
    def __reduce__(self):  # noqa: ANN204
        return (print, ("this must never run",))


def test_pickle_reader_refuses_code_and_bad_content(tmp_path: Path) -> None:
    cases = {
        "evil.pkl": ({"v,0902": Evil()}, "refusing to load builtins.print"),
        "list.pkl": ([1, 2], "expected a dict"),
        "key.pkl": ({"v-0902": np.zeros((1, 5))}, "not of the form"),
        "shape.pkl": ({"v,0902": np.zeros((2, 3))}, r"expected a numeric array \[N, 5\]"),
        "pixels.pkl": ({"v,0902": np.array([[10.0, 10, 200, 200, 0.9]])}, r"outside \[0, 1\]"),
        "dup.pkl": ({"v,902": np.zeros((1, 5)), "v,0902": np.zeros((1, 5))}, "appears twice"),
    }
    for name, (payload, match) in cases.items():
        with (tmp_path / name).open("wb") as fh:
            pickle.dump(payload, fh, protocol=4)
        with pytest.raises(AvaFormatError, match=match):
            read_proposals(tmp_path / name)
    data = (tmp_path / "dup.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(AvaFormatError, match="truncated"):
        read_proposals(tmp_path / "cut.pkl")


def test_pickle_with_four_columns_and_empty_entries(tmp_path: Path) -> None:
    payload = {"v,0902": np.array([[0.1, 0.1, 0.2, 0.2]], np.float32), "v,0903": np.zeros((0, 5))}
    with (tmp_path / "p.pkl").open("wb") as fh:
        pickle.dump(payload, fh)
    dets = read_proposals(tmp_path / "p.pkl", score_threshold=0.5)
    assert dets[KeyframeKey("v", 902)].scores.tolist() == [1.0]
    assert len(dets[KeyframeKey("v", 903)]) == 0


def test_proposals_are_validated_like_detections(tmp_path: Path) -> None:
    """Pickles and CSVs alike: scores in [0, 1], boxes ordered and inside [0, 1]; refused naming the
    entry or line and --lenient, or read leniently with one warning per problem."""
    payload = {
        "v,0902": np.array([[0.1, 0.1, 0.5, 0.5, 0.9], [0.2, 0.2, 0.6, 0.6, 0.3]]),
        "v,0903": np.array([[0.1, 0.1, 0.5, 1.2, 0.9], [0.1, 0.1, 0.5, 0.5, 1.7]]),
    }
    with (tmp_path / "p.pkl").open("wb") as fh:
        pickle.dump(payload, fh, protocol=4)
    with pytest.raises(AvaFormatError, match=r"entry 'v,0903': box \(0.1, 0.1, 0.5, 1.2\) is outside \[0, 1\]") as err:
        read_proposals(tmp_path / "p.pkl")
    assert "--lenient" in str(err.value)
    seen: list[str] = []
    dets = read_proposals(tmp_path / "p.pkl", lenient=True, on_warning=seen.append)
    assert dets[KeyframeKey("v", 903)].boxes.tolist()[0] == pytest.approx([0.1, 0.1, 0.5, 1.0])
    assert dets[KeyframeKey("v", 903)].scores.tolist()[1] == pytest.approx(1.7)
    assert seen == [
        f"{tmp_path / 'p.pkl'}: entry 'v,0903': box (0.1, 0.1, 0.5, 1.2) is outside [0, 1]; 1 such row clipped to [0, 1] (--lenient)",
        f"{tmp_path / 'p.pkl'}: entry 'v,0903': score 1.7 is outside [0, 1]; 1 such row kept as given (--lenient)",
    ]
    (tmp_path / "p.csv").write_text("v,0902,0.1,0.1,0.5,0.5,0.9\nv,0902,0.6,0.1,0.5,0.5,0.8\n")
    with pytest.raises(AvaFormatError, match=r"p.csv:2: box \(0.6, 0.1, 0.5, 0.5\) has x1 > x2"):
        read_proposals(tmp_path / "p.csv")
    with pytest.warns(UserWarning, match=r"p.csv:2: box .* 1 such row kept"):
        assert len(read_proposals(tmp_path / "p.csv", lenient=True)[KeyframeKey("v", 902)]) == 2


def test_pixel_proposals_name_the_fix(tmp_path: Path) -> None:
    with (tmp_path / "px.pkl").open("wb") as fh:
        pickle.dump({"v,0902": np.array([[32.0, 24, 160, 216, 0.9]])}, fh, protocol=4)
    with pytest.raises(AvaFormatError, match="look like pixel coordinates") as err:
        read_proposals(tmp_path / "px.pkl")
    assert "pixel_boxes=(WIDTH, HEIGHT)" in str(err.value)
    boxes = read_proposals(tmp_path / "px.pkl", pixel_boxes=(320, 240))[KeyframeKey("v", 902)].boxes
    np.testing.assert_allclose(boxes, [[0.1, 0.1, 0.5, 0.9]], rtol=1e-6)
