"""Exact AVA frame-mAP (official ActivityNet protocol, vectorised) and its reports.

Public API::

    evaluate_frame_map(groundtruth, detections, labelmap, exclusions=..., protocol="2019",
                       variant="official", iou_threshold=0.5, top_k=50) -> FrameMapResult
    evaluate_files(labelmap, groundtruth, detections, exclusions=None, ...) -> FrameMapResult
    write_report(result, out_dir) -> ReportFiles   # JSON, markdown, PR plots (PNG)
"""

from __future__ import annotations

from stad_core.evaluation.files import evaluate_files
from stad_core.evaluation.frame_map import ClassResult, FrameMapResult, LabelMapLike, evaluate_frame_map
from stad_core.evaluation.groups import class_groups
from stad_core.evaluation.report import ReportFiles, ap_lines, markdown_report, plot_pr_curves, write_json, write_report
from stad_core.evaluation.rules import PROTOCOLS, VARIANTS, EvalRules, rules_for

__all__ = [
    "PROTOCOLS",
    "VARIANTS",
    "ClassResult",
    "EvalRules",
    "FrameMapResult",
    "LabelMapLike",
    "ReportFiles",
    "ap_lines",
    "class_groups",
    "evaluate_files",
    "evaluate_frame_map",
    "markdown_report",
    "plot_pr_curves",
    "rules_for",
    "write_json",
    "write_report",
]
