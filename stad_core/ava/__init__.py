"""The AVA data layer: ground truth, detections, exclusions, label maps, proposals, frame lists.

Every reader names the file and line of the first problem it finds (:class:`AvaFormatError`);
``docs/data-formats.md`` describes each format, its columns and the tolerance decisions.

Modules: ``keys`` (:class:`KeyframeKey`, the one keyframe id), ``table`` (:class:`AvaTable`),
``csv_read`` (:func:`read_ava_csv`, the one box-CSV reader, over ``csv_fast`` / ``csv_diagnose``
/ ``csv_validate`` and the shared ``csv_columns``), ``csv_write``, ``labelmap``, ``proposals``,
``frame_lists``.
"""

from __future__ import annotations

from stad_core.ava.csv_read import read_ava_csv, read_exclusions
from stad_core.ava.csv_write import write_ava_csv, write_exclusions
from stad_core.ava.frame_lists import FrameList, read_frame_list, write_frame_list
from stad_core.ava.keys import AvaFormatError, KeyframeKey, image_key
from stad_core.ava.labelmap import LabelMap, read_labelmap, write_labelmap
from stad_core.ava.proposals import KeyframeDetections, group_by_keyframe, read_proposals, write_proposals
from stad_core.ava.table import AvaTable

__all__ = [
    "AvaFormatError",
    "AvaTable",
    "FrameList",
    "KeyframeDetections",
    "KeyframeKey",
    "LabelMap",
    "group_by_keyframe",
    "image_key",
    "read_ava_csv",
    "read_exclusions",
    "read_frame_list",
    "read_labelmap",
    "read_proposals",
    "write_ava_csv",
    "write_exclusions",
    "write_frame_list",
    "write_labelmap",
    "write_proposals",
]
