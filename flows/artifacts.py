"""Prefect artifacts of an evaluation: the mAP table, the per-class table, a markdown report with
the PR plots, the history so far, and a link to the evaluated bank."""

from __future__ import annotations

import base64
from typing import Any

from storage.stages.evaluate import workspace_history
from storage.uri import local_path
from storage.workspace import Workspace


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def publish_evaluation(summary: dict[str, Any], bank: str, extract_key: str, workspace: str) -> None:
    """Publish ``summary`` (an evaluate output's summary.json) as Prefect artifacts."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    ws = Workspace(workspace)
    key = "".join(c if c.isalnum() else "-" for c in summary["head"].lower())
    create_table_artifact(
        [{"head": summary["head"], "split": summary["split"], "mAP": pct(summary["mAP"]),
          **{g: pct(v) for g, v in summary["groups"].items()}}],
        key=f"frame-map-{key}", description=f"frame-mAP@0.5 (%) of {summary['head']} on {summary['split']}")
    create_table_artifact(
        [{"id": c["id"], "class": c["name"], "group": c["group"], "AP": pct(c["ap"]), "GT": c["gt"],
          "TP": c["tp"]} for c in summary["classes"]],
        key=f"per-class-ap-{key}", description=f"per-class AP (%) of {summary['head']}")
    plots = []
    for path in summary["plots"]:
        data = base64.b64encode(local_path(ws.uri(path)).read_bytes()).decode()
        plots.append(f"![{path.rsplit('/', 1)[-1]}](data:image/png;base64,{data})")
    create_markdown_artifact(summary["markdown"] + "\n## precision-recall\n\n" + "\n\n".join(plots) + "\n",
                             key=f"report-{key}", description=f"frame-mAP report of {summary['head']}")
    rows = workspace_history(workspace)
    create_table_artifact(
        [{"evaluated_at": str(r["evaluated_at"]), "head": r["head"], "split": r["split"], "mAP": pct(r["mAP"]),
          **{g: pct(v) for g, v in r["groups"].items()}} for r in rows[-50:]],
        key="results-history", description="results history (latest 50 evaluations)")
    create_link_artifact(bank if "://" in bank else f"file://{bank}", link_text=f"long-term bank {extract_key}",
                         key=f"bank-{key}", description="the feature bank these results were computed from")
