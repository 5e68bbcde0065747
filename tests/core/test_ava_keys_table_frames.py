"""KeyframeKey, AvaTable helpers and PySlowFast frame lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stad_core.ava import (
    AvaFormatError,
    AvaTable,
    FrameList,
    KeyframeKey,
    image_key,
    read_frame_list,
    write_frame_list,
)

# -- keys ----------------------------------------------------------------------------------------


def test_keyframe_key_forms() -> None:
    assert image_key("vid", 902) == "vid,0902"
    assert KeyframeKey("vid", 902).image_key == "vid,0902" == str(KeyframeKey("vid", 902))
    assert KeyframeKey.parse("vid,902") == KeyframeKey.parse(" vid,0902 ") == KeyframeKey("vid", 902)
    assert KeyframeKey.parse("-a,b_c,1798") == KeyframeKey("-a,b_c", 1798)  # split on the last comma
    assert KeyframeKey.parse("v,12345").image_key == "v,12345"
    assert sorted([KeyframeKey("b", 1), KeyframeKey("a", 5), KeyframeKey("a", 2)]) == [
        KeyframeKey("a", 2), KeyframeKey("a", 5), KeyframeKey("b", 1)
    ]
    for bad in ("vid0902", ",0902", "vid,09x2", "vid,902.5", "vid,-3"):
        with pytest.raises(ValueError):
            KeyframeKey.parse(bad)


def test_keyframe_key_at_a_float_time() -> None:
    """Times read from banks and CSVs name a keyframe at millisecond precision."""
    key = KeyframeKey.at(np.str_("vid"), np.float64(902.0004))
    assert key == KeyframeKey("vid", 902) and hash(key) == hash(KeyframeKey("vid", 902))
    assert type(key.timestamp) is int and type(key.video_id) is str and key.image_key == "vid,0902"
    assert KeyframeKey.at("vid", 901.9996) == KeyframeKey("vid", 902)
    assert KeyframeKey.at("vid", 1000.5) == KeyframeKey("vid", 1000.5) != KeyframeKey("vid", 1000)
    assert KeyframeKey.at("vid", 1000.5004) == KeyframeKey.at("vid", 1000.4996)
    video_id, t = KeyframeKey.at("vid", 3.0)  # a key unpacks like the (video_id, t) pair it is
    assert (video_id, t) == ("vid", 3)
    truth = {KeyframeKey.at("v", t): t for t in (902.0, 903.0, 1000.25)}
    assert [truth.get(KeyframeKey("v", s)) for s in (902, 903, 904)] == [902.0, 903.0, None]
    assert sorted(truth) == [KeyframeKey("v", 902), KeyframeKey("v", 903), KeyframeKey("v", 1000.25)]


# -- table -----------------------------------------------------------------------------------------


def small_table() -> AvaTable:
    return AvaTable.from_arrays(
        ["b", "a", "b", "a", "c"],
        [903, 902, 902, 902, 1000.5],
        np.arange(20, dtype=float).reshape(5, 4) / 20,
        action_id=[1, 2, 3, 4, 5],
        person_id=[0, 1, 2, 3, 4],
    )


def test_from_arrays_select_and_video_ids() -> None:
    t = small_table()
    assert t.videos.tolist() == ["a", "b", "c"] and t.video_index.tolist() == [1, 0, 1, 0, 2]
    assert t.video_id.tolist() == ["b", "a", "b", "a", "c"]
    assert t.line.tolist() == [0] * 5 and t.score is None and not t.is_detections
    sub = t.select(t.action_id > 2)
    assert sub.video_id.tolist() == ["b", "a", "c"] and sub.person_id.tolist() == [2, 3, 4]
    assert t.select([4, 0]).timestamp.tolist() == [1000.5, 903.0]
    with pytest.raises(ValueError, match="mask"):
        t.select(np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="disagree"):
        AvaTable(t.videos, t.video_index, t.timestamp[:2], t.boxes, t.action_id, t.person_id, None, t.line)


def test_concat_merges_vocabularies() -> None:
    a = small_table()
    b = AvaTable.from_arrays(["zz", "a"], [1, 2], np.zeros((2, 4)))
    both = AvaTable.concat([a, b])
    assert both.videos.tolist() == ["a", "b", "c", "zz"]
    assert both.video_id.tolist() == a.video_id.tolist() + ["zz", "a"]
    with pytest.raises(ValueError, match="ground-truth"):
        AvaTable.concat([a, AvaTable.empty(with_score=True)])


def test_keyframe_groups_and_exclusion_mask() -> None:
    t = small_table()
    kv, kt, inverse = t.keyframe_groups()
    assert [(t.videos[v], s) for v, s in zip(kv, kt)] == [("a", 902.0), ("b", 902.0), ("b", 903.0), ("c", 1000.5)]
    assert inverse.tolist() == [2, 0, 1, 0, 3]
    mask = t.in_keyframes({KeyframeKey("a", 902), KeyframeKey("b", 903), KeyframeKey("nope", 902), KeyframeKey("c", 1000)})
    assert mask.tolist() == [True, True, False, True, False]  # 1000.5 is not the whole second 1000
    with pytest.raises(ValueError, match="whole-second"):
        t.keyframe_keys()
    assert t.select(slice(0, 4)).keyframe_keys() == [KeyframeKey("a", 902), KeyframeKey("b", 902), KeyframeKey("b", 903)]
    assert AvaTable.empty(with_score=False).in_keyframes([KeyframeKey("a", 1)]).shape == (0,)


# -- frame lists -----------------------------------------------------------------------------------

HEADER = "original_vido_id video_id frame_id path labels\n"


def frame_rows(video: str, index: int, n: int) -> str:
    return "".join(f'{video} {index} {k} {video}/{video}_{k + 1:06d}.jpg ""\n' for k in range(n))


def test_frame_list_read_and_round_trip(tmp_path: Path) -> None:
    text = HEADER + frame_rows("-5KQ66BBWC4", 0, 3) + frame_rows("zzz", 1, 2)
    (tmp_path / "train.csv").write_text(text)
    fl = read_frame_list(tmp_path / "train.csv")
    assert len(fl) == 5 and fl.videos.tolist() == ["-5KQ66BBWC4", "zzz"]
    assert fl.frame_paths("zzz") == ["zzz/zzz_000001.jpg", "zzz/zzz_000002.jpg"]
    assert fl.frame_paths("zzz", root="/frames")[0] == "/frames/zzz/zzz_000001.jpg"
    assert fl.labels.tolist() == [""] * 5 and fl.warnings == []
    write_frame_list(tmp_path / "out.csv", fl)
    assert (tmp_path / "out.csv").read_text() == text
    with pytest.raises(KeyError, match="not in frame list"):
        fl.frame_paths("missing")


def test_frame_list_first_appearance_order_and_warnings(tmp_path: Path) -> None:
    text = HEADER + frame_rows("zzz", 7, 2) + frame_rows("aaa", 7, 1) + 'aaa 8 5 aaa/x.jpg ""\n\n'
    (tmp_path / "f.csv").write_text(text)
    fl = read_frame_list(tmp_path / "f.csv")
    assert fl.videos.tolist() == ["zzz", "aaa"]
    assert any("not contiguous" in w for w in fl.warnings)
    assert any("1 video(s) have more than one numeric video_id" in w for w in fl.warnings)
    assert fl.frame_paths("aaa") == ["aaa/aaa_000001.jpg", "aaa/x.jpg"]


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("video frame path\n", 1, "unexpected header"),
        (HEADER + frame_rows("a", 0, 2) + 'a 0 x a/3.jpg ""\n', 4, "frame_id 'x'"),
        (HEADER + frame_rows("a", 0, 2) + "a 0 2\n", 4, "expected 5"),
        (HEADER + frame_rows("a", 0, 1) + "\n" + frame_rows("b", 1, 1), 3, "blank line"),
        (HEADER + frame_rows("a", 0, 2) + 'a 0 1 a/again.jpg ""\n', 4, "lists frame_id 1 twice"),
    ],
)
def test_frame_list_errors(tmp_path: Path, text: str, line: int, match: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(AvaFormatError, match=match) as info:
        read_frame_list(tmp_path / "bad.csv")
    assert info.value.line == line


def test_frame_list_dataclass_from_arrays() -> None:
    fl = FrameList(
        videos=np.array(["v"], dtype=object),
        video_index=np.zeros(2, np.int32),
        frame_id=np.array([1, 0]),
        path=np.array(["b.jpg", "a.jpg"], dtype=object),
        labels=np.array(["", ""], dtype=object),
    )
    assert fl.frame_paths("v") == ["a.jpg", "b.jpg"]
