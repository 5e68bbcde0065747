"""Tube evaluation results: one summary dict, a JSON file, and a report folder (markdown + v-mAP plot)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stad_core.atomic import atomic_write_text
from stad_core.tubes.metrics import VIDEO_THRESHOLDS, APResult, video_map_summary


def summarize(frame: APResult | None, video: Mapping[float, APResult] | None) -> dict[str, Any]:
    """Headline figures (fractions), per-class APs and the v-mAP curve, JSON-ready."""
    out: dict[str, Any] = {}
    if frame is not None:
        out["f-mAP@0.5" if frame.threshold == 0.5 else f"f-mAP@{frame.threshold:g}"] = frame.mean
        out["frame_per_class"] = frame.per_class
    if video:
        out.update(video_map_summary(video))
        out["video_curve"] = {f"{t:.1f}": r.mean for t, r in video.items()}
        out["video_per_class"] = {f"{t:.1f}": r.per_class for t, r in video.items()}
        first = next(iter(video.values()))
        out["num_gt_tubes"], out["num_det_tubes"] = first.num_gt, first.num_det
    return out


def headline_lines(summary: Mapping[str, Any]) -> list[str]:
    """Lines as the public tools print them (AP in percent)."""
    keys = [k for k in summary if k.startswith(("f-mAP", "v-mAP"))]
    return [f"{k:16s} {100 * summary[k]:8.2f}" for k in keys]


def write_json(summary: Mapping[str, Any], path: str | Path) -> None:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not np.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        return x

    atomic_write_text(Path(path), json.dumps(clean(dict(summary)), indent=2, sort_keys=True) + "\n")


def write_report(summary: Mapping[str, Any], folder: str | Path) -> Path:
    """``report.md`` (headline, per-class f-AP and v-AP) and ``video_map.png`` (v-mAP against threshold)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# Tube evaluation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {100 * summary[k]:.2f} |" for k in summary if k.startswith(("f-mAP", "v-mAP"))]
    per_video = summary.get("video_per_class", {})
    frame_pc = summary.get("frame_per_class", {})
    classes = list(dict.fromkeys([*frame_pc, *next(iter(per_video.values()), {})]))
    if classes:
        cols = [t for t in ("0.2", "0.5") if t in per_video]
        lines += ["", "## Per class (AP %)", "", "| class | f-AP | " + " | ".join(f"v-AP@{c}" for c in cols)
                  + (" | v-AP@0.1:0.9 |" if len(per_video) >= 9 else " |"),
                  "|---|---|" + "---|" * len(cols) + ("---|" if len(per_video) >= 9 else "")]
        for c in classes:
            cells = [f"{100 * frame_pc[c]:.2f}" if c in frame_pc else "-"]
            cells += [f"{100 * per_video[t][c]:.2f}" if c in per_video[t] else "-" for t in cols]
            if len(per_video) >= 9:
                vals = [per_video[f"{t:.1f}"].get(c) for t in VIDEO_THRESHOLDS]
                cells.append(f"{100 * float(np.mean(vals)):.2f}" if None not in vals else "-")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    curve = summary.get("video_curve")
    if curve:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        xs = [float(t) for t in curve]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(xs, [100 * curve[k] for k in curve], marker="o")
        ax.set_xlabel("spatio-temporal IoU threshold")
        ax.set_ylabel("video-mAP (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(folder / "video_map.png", dpi=100)
        plt.close(fig)
        lines += ["", "![video-mAP against the IoU threshold](video_map.png)"]
    atomic_write_text(folder / "report.md", "\n".join(lines) + "\n")
    return folder / "report.md"
