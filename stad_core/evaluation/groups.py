"""Grouping classes for reports: AVA's pose / person-object / person-person split, or whatever
``label_type`` values a label map declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: AVA's label types and the names its papers give the groups.
AVA_GROUP_NAMES: dict[str, str] = {
    "PERSON_MOVEMENT": "pose",
    "OBJECT_MANIPULATION": "person-object",
    "PERSON_INTERACTION": "person-person",
}

#: AVA v2.x id ranges, used when a label map declares no label types.
AVA_ID_RANGES: tuple[tuple[str, int, int], ...] = (
    ("pose", 1, 14),
    ("person-object", 15, 63),
    ("person-person", 64, 80),
)


def group_name_for_type(label_type: str) -> str:
    """``PERSON_MOVEMENT -> pose`` etc.; any other type is lower-cased (``SHORT_TERM -> short_term``)."""
    return AVA_GROUP_NAMES.get(label_type, label_type.lower())


def class_groups(labelmap: Any, class_ids: Sequence[int]) -> dict[str, list[int]]:
    """Group name -> sorted class ids, in order of first appearance by class id.

    Uses ``labelmap.label_types`` when it gives a type for any of the classes (classes without
    one go to ``"other"``); otherwise AVA's id ranges (ids outside them go to ``"other"``).
    """
    types: Mapping[int, str] = getattr(labelmap, "label_types", None) or {}
    groups: dict[str, list[int]] = {}
    use_types = any(types.get(c) for c in class_ids)
    for cid in sorted(class_ids):
        if use_types:
            name = group_name_for_type(types[cid]) if types.get(cid) else "other"
        else:
            name = next((g for g, lo, hi in AVA_ID_RANGES if lo <= cid <= hi), "other")
        groups.setdefault(name, []).append(cid)
    return groups
