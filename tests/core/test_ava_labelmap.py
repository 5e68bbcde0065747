"""Label maps in every layout: real files, round trips, malformed input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stad_core.ava import AvaFormatError, LabelMap, read_labelmap, write_labelmap
from stad_core.errors import InputFileError

LIST_60 = "activitynet/ava_action_list_v2.1_for_activitynet_2018.pbtxt.txt"
LIST_60_TT = "tubelet-transformer/ava_action_list_v2.1_for_activitynet_2018.pbtxt"
LIST_80 = "tubelet-transformer/ava_action_list_v2.1.pbtxt"
ONE_LINE = "derenlei_AVA-II/ava_labels_60_oneline_format.txt"
MM_IDS = "mmaction2/tools_data_ava_label_map.txt"
MM_4 = "mmaction2/tests_data_ava_dataset_action_list.txt"


def reference_pairs(text: str) -> list[tuple[int, str]]:
    """Independent reference: pair each quoted name with the next id in the text."""
    names = re.findall(r'name:\s*"([^"]*)"', text)
    ids = [int(i) for i in re.findall(r"\b(?:label_)?id:\s*(\d+)", text)]
    return list(zip(ids, names))


@pytest.mark.shared_data
def test_sixty_class_item_layout(shared_data: Path) -> None:
    lm = read_labelmap(shared_data / LIST_60)
    text = (shared_data / LIST_60).read_text()
    assert len(lm) == 60
    assert list(lm.names.items()) == sorted(reference_pairs(text))
    assert lm.ids[:5] == [1, 3, 4, 5, 6] and 2 not in lm
    assert lm.name(80) == "watch (a person)" and lm.label_types == {}
    assert read_labelmap(shared_data / LIST_60_TT).names == lm.names


@pytest.mark.shared_data
def test_eighty_class_label_layout_with_types(shared_data: Path) -> None:
    lm = read_labelmap(shared_data / LIST_80)
    assert lm.ids == list(range(1, 81))
    assert set(lm.label_types.values()) == {"PERSON_MOVEMENT", "OBJECT_MANIPULATION", "PERSON_INTERACTION"}
    assert lm.label_types[1] == "PERSON_MOVEMENT" and lm.label_types[80] == "PERSON_INTERACTION"
    assert list(lm.names.items()) == reference_pairs((shared_data / LIST_80).read_text())
    sixty = read_labelmap(shared_data / LIST_60)
    sub = lm.subset(sixty.ids)
    assert sub.names == sixty.names and len(sub.label_types) == 60


@pytest.mark.shared_data
def test_one_line_layout_and_id_colon_lines_agree(shared_data: Path) -> None:
    sixty = read_labelmap(shared_data / LIST_60)
    one_line = read_labelmap(shared_data / ONE_LINE)
    mm = read_labelmap(shared_data / MM_IDS)
    assert one_line.names == sixty.names
    assert mm.ids == sixty.ids
    assert mm.name(62) == "work on a computer" and mm.name(1) == "bend/bow (at the waist)"
    # names agree apart from whitespace
    assert {i: n.strip() for i, n in mm.names.items()} == sixty.names


@pytest.mark.shared_data
def test_four_class_list_with_duplicated_name(shared_data: Path) -> None:
    lm = read_labelmap(shared_data / MM_4)
    assert lm.names == {12: "action1", 17: "action2", 79: "action3", 80: "action3"}
    assert lm.index_of() == {12: 0, 17: 1, 79: 2, 80: 3}


def test_write_read_round_trip(tmp_path: Path) -> None:
    lm = LabelMap({5: 'say "hi"', 2: "b\\c"}, {2: "PERSON_MOVEMENT"})
    write_labelmap(tmp_path / "lm.pbtxt", lm)
    text = (tmp_path / "lm.pbtxt").read_text()
    assert text.startswith('label {\n  name: "b\\\\c"\n  label_id: 2\n  label_type: PERSON_MOVEMENT\n}\n')
    back = read_labelmap(tmp_path / "lm.pbtxt")
    assert back.names == {2: "b\\c", 5: 'say "hi"'} and back.label_types == {2: "PERSON_MOVEMENT"}


@pytest.mark.shared_data
def test_real_eighty_class_round_trip(shared_data: Path, tmp_path: Path) -> None:
    lm = read_labelmap(shared_data / LIST_80)
    write_labelmap(tmp_path / "80.pbtxt", lm)
    back = read_labelmap(tmp_path / "80.pbtxt")
    assert back.names == lm.names and back.label_types == lm.label_types


def test_json_layout(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"stand": 12, "sit": 11}')
    assert read_labelmap(tmp_path / "c.json").names == {11: "sit", 12: "stand"}


def test_lookup_errors() -> None:
    lm = LabelMap({1: "a"})
    with pytest.raises(KeyError, match="action id 7"):
        lm.name(7)
    with pytest.raises(KeyError, match=r"\[9\]"):
        lm.subset([1, 9])


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ('item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 1\n}\n', 5, r"id 1 appears twice \(first on line 1\)"),
        ('item {\n  name: "a"\n  id: x\n}\n', 3, "not a positive integer"),
        ('item {\n  name: "a"\n  id: 0\n}\n', 3, "not a positive integer"),
        ('item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n', 5, "not closed"),
        ('item {\n  name: "a"\n}\n', 1, "block has no id"),
        ('item {\n  nmae: "a"\n  id: 1\n}\n', 2, "unknown field 'nmae'"),
        ('item { name: "a" id: 1 }\n}\n', 2, "without a matching block"),
        ("1: a\n2 b\n", 2, "is not 'id: name'"),
        ("1: a\n1: b\n", 2, "appears twice"),
    ],
)
def test_malformed_label_maps(tmp_path: Path, text: str, line: int, match: str) -> None:
    path = tmp_path / "bad.pbtxt"
    path.write_text(text)
    with pytest.raises(AvaFormatError, match=match) as info:
        read_labelmap(path)
    assert info.value.line == line


def test_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "e.txt").write_text("  \n")
    with pytest.raises(AvaFormatError, match="empty"):
        read_labelmap(tmp_path / "e.txt")
    with pytest.raises(InputFileError, match="not found"):
        read_labelmap(tmp_path / "missing.pbtxt")
