"""Reports of a frame-mAP result: AP table text, JSON, markdown and precision-recall plots.

The files are what the evaluate stage publishes as Prefect artifacts (markdown table, JSON
metrics, PNG plots); nothing here knows about Prefect.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stad_core.evaluation.frame_map import FrameMapResult

#: Points kept per class when drawing a PR curve (curves have one point per detection).
MAX_CURVE_POINTS = 400


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    json: Path
    markdown: Path
    plots: list[Path]


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def ap_lines(result: FrameMapResult) -> list[str]:
    """The evaluator's plain-text output: one ``AP@0.5IOU<TAB>id<TAB>name<TAB>ap`` line per class
    (``nan`` for classes without ground truth), then ``mAP@0.5IOU<TAB>value``."""
    tag = f"{result.iou_threshold:g}IOU"
    lines = [f"AP@{tag}\t{c.id}\t{c.name}\t{c.ap:.6f}" for c in result.classes]
    lines.append(f"mAP@{tag}\t{result.mAP:.6f}")
    return lines


def markdown_report(result: FrameMapResult, *, title: str = "AVA frame-mAP") -> str:
    """A markdown summary: headline mAP, settings, per-group tables of per-class AP."""
    rules = result.rules
    out = [
        f"# {title}",
        "",
        f"**mAP@{result.iou_threshold:g} IoU: {_fmt(result.mAP)}**",
        "",
        f"protocol {rules.protocol}, variant {rules.variant}, top-k per keyframe: {rules.top_k or 'none'}",
        "",
        "| group | classes | mAP |",
        "|---|---:|---:|",
    ]
    for name, (ids, value) in result.groups.items():
        out.append(f"| {name} | {len(ids)} | {_fmt(value)} |")
    by_id = {c.id: c for c in result.classes}
    for name, (ids, value) in result.groups.items():
        out += ["", f"## {name} (mAP {_fmt(value)})", "", "| id | class | AP | GT | detections | TP |", "|---:|---|---:|---:|---:|---:|"]
        for cid in ids:
            c = by_id[cid]
            out.append(f"| {c.id} | {c.name} | {_fmt(c.ap)} | {c.num_gt} | {c.num_det} | {c.num_tp} |")
    if result.stats:
        out += ["", "## rows", "", "| count | value |", "|---|---:|"]
        out += [f"| {key} | {value} |" for key, value in result.stats.items()]
    return "\n".join(out) + "\n"


def _thin(precision: np.ndarray, recall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(precision) <= MAX_CURVE_POINTS:
        return precision, recall
    idx = np.unique(np.linspace(0, len(precision) - 1, MAX_CURVE_POINTS).astype(np.int64))
    return precision[idx], recall[idx]


def pr_figure(result: FrameMapResult, name: str) -> object:
    """The precision-recall grid of group ``name``: one panel per class of the group, in id order.

    Every class gets its panel: a class without ground truth (no AP) or without detections says so
    instead of disappearing. Each panel has recall/precision axis labels; the margins are set in
    inches so tick labels and titles stay inside the image whatever the grid size.
    Returns a ``matplotlib.figure.Figure`` (no pyplot state).
    """
    from matplotlib.figure import Figure

    all_ids, value = result.groups[name]
    by_id = {c.id: c for c in result.classes}
    ids = list(all_ids)
    cols = max(1, min(6, len(ids)))
    rows = max(1, math.ceil(len(ids) / cols))
    panel_w, panel_h = 2.6, 2.5
    left, right, bottom, top = 0.55, 0.15, 0.5, 0.75  # inches
    width, height = cols * panel_w + left + right, rows * panel_h + bottom + top
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(ids):]:
        ax.axis("off")
    for ax, cid in zip(axes.flat, ids):
        c = by_id[cid]
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xticks([0, 0.5, 1])  # few fixed ticks: tick creation dominates drawing time
        ax.set_yticks([0, 0.5, 1])
        ax.tick_params(labelsize=6)
        ax.set_xlabel("recall", fontsize=7, labelpad=1)
        ax.set_ylabel("precision", fontsize=7, labelpad=1)
        if cid in result.pr_curves and len(result.pr_curves[cid][0]):
            precision, recall = _thin(*result.pr_curves[cid])
            ax.step(np.r_[0.0, recall], np.r_[precision[:1], precision], where="post")
            detail = f"AP {_fmt(c.ap, 3)}"
        else:
            reason = "no ground truth" if c.num_gt == 0 else "no detections"
            ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize=7, color="0.4", transform=ax.transAxes)
            detail = f"AP {_fmt(c.ap, 3)} ({reason})"
        ax.set_title(f"{c.id} {c.name[:22]}\n{detail}", fontsize=7)
    fig.suptitle(f"{name}: mAP {_fmt(value)} (precision vs recall, one panel per class)", fontsize=9)
    # Fixed spacing (tight_layout costs seconds on a 49-panel grid), in inches converted to fractions.
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        hspace=0.95, wspace=0.5)
    return fig


def plot_pr_curves(result: FrameMapResult, out_dir: str | Path) -> list[Path]:
    """One PNG per class group (``pr_<group>.png``): :func:`pr_figure` of every group with classes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, (all_ids, _) in result.groups.items():
        if not all_ids:
            continue
        fig = pr_figure(result, name)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
        path = out_dir / f"pr_{safe}.png"
        fig.savefig(path, dpi=80)  # type: ignore[attr-defined]
        paths.append(path)
    return paths


def write_json(result: FrameMapResult, path: str | Path) -> Path:
    """Write :meth:`FrameMapResult.to_json` (strict JSON: NaN written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    return path


def write_report(result: FrameMapResult, out_dir: str | Path, *, plots: bool = True) -> ReportFiles:
    """Write ``frame_map.json``, ``frame_map.md`` and (optionally) ``pr_<group>.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = write_json(result, out_dir / "frame_map.json")
    md_path = out_dir / "frame_map.md"
    md_path.write_text(markdown_report(result))
    return ReportFiles(json=json_path, markdown=md_path, plots=plot_pr_curves(result, out_dir) if plots else [])
