"""Evaluate stage: a trained head on a split -> AVA detections CSV, frame-mAP report, history row,
Prefect artifacts; and the ``reevaluate`` flow (the scheduled deployment) that evaluates every
trained head in the workspace that has no evaluation yet.

Outputs in ``<ws>/evaluate/<hash>-<key>/``: ``detections.csv`` (AVA format), ``report/``
(``frame_map.json``, ``frame_map.md``, ``pr_<group>.png``) and ``summary.json``. Each evaluation
that runs appends one row to ``<ws>/history/results.parquet`` (``stad history`` prints it) and
publishes artifacts: the mAP table of the run, the per-class table, a markdown report with the PR
plots, the history so far, and a link to the bank that was evaluated.

Run alone: ``stad run evaluate split=val`` (the newest train/acfb output of the workspace).
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from dataclasses import replace
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from flows.extract import bank_uris
from flows.gpu import gpu_device, submit_task
from flows.runtime import default_task_runner, reuse_or_begin, stage_progress
from flows.train import CHECKPOINT, load_dataset, open_banks
from flows.workspace import StageRef, Workspace, join, local_path, read_text
from stad_core.config import StageConfig
from stad_core.errors import StadError
from stad_core.evaluation import markdown_report, write_report
from stad_core.train import evaluate_predictions, load_trained_head, predict, write_predictions_csv
from stad_core.train.labels import keyframe_id

STAGE = "evaluate"
SUMMARY = "summary.json"
HISTORY = ("history", "results.parquet")
MODEL_STAGES = ("train", "acfb")
_HISTORY_LOCK = threading.Lock()


class EvaluateConfig(StageConfig):
    """How a trained head is scored."""

    split: Literal["train", "val", "test"] = Field("val", description="whose ground-truth keyframes are scored")
    protocol: Literal["2019", "2020"] = "2019"
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="drop (actor, class) scores below this from the CSV")
    plots: bool = Field(True, description="write precision-recall plots (PNG) with the report")


def history_uri(workspace: str) -> str:
    return join(Workspace(workspace).root, *HISTORY)


def model_label(ref: StageRef) -> str:
    """A short name for a trained head: its head (and FBO) from the checkpoint's metrics."""
    try:
        metrics = json.loads(read_text(join(ref.uri, "metrics.json")))
        return str(metrics.get("label") or metrics["head"])
    except (OSError, ValueError, KeyError):
        return ref.stage


@task(name="evaluate-head", cache_policy=NO_CACHE, persist_result=False, tags=["gpu"])
def evaluate_task(config: EvaluateConfig, stage_uri: str, model: StageRef, ingest: StageRef,
                  extract: StageRef) -> dict[str, Any]:
    out = local_path(stage_uri)
    data = load_dataset(ingest, STAGE)
    gt = data.groundtruth(config.split)
    if model.stage == "acfb":
        from flows.acfb import acfb_banks

        banks = acfb_banks(model, extract)
    else:
        banks = open_banks(extract)
    with gpu_device() as lease:
        trained = load_trained_head(local_path(join(model.uri, CHECKPOINT)), device=lease.device)
        kv, kt, _ = gt.keyframe_groups()
        keyframes = [keyframe_id(gt.videos[i], t) for i, t in zip(kv.tolist(), kt.tolist())]
        predictions = predict(trained.head, banks, trained.loss, trained.classes,
                              window_width=trained.config.window_width,
                              window_per_second=trained.config.window_per_second, keyframes=keyframes,
                              batch_size=trained.config.batch_size, device=lease.device,
                              on_progress=stage_progress(STAGE))
    write_predictions_csv(out / "detections.csv", predictions, min_score=config.min_score)
    result = evaluate_predictions(predictions, gt, data.labelmap, exclusions=data.exclusions, protocol=config.protocol)
    files = write_report(result, out / "report", plots=config.plots)
    summary = {
        "head": model_label(model), "model_stage": model.stage, "model_key": model.key, "model_uri": model.uri,
        "epoch": trained.epoch, "split": config.split, "protocol": config.protocol,
        "mAP": _finite(result.mAP), "groups": {name: _finite(v) for name, (_, v) in result.groups.items()},
        "classes": [{"id": c.id, "name": c.name, "group": c.group, "ap": _finite(c.ap), "gt": c.num_gt,
                     "detections": c.num_det, "tp": c.num_tp} for c in result.classes],
        "actors": len(predictions), "keyframes": len(keyframes),
        "plots": [str(p) for p in files.plots], "markdown": markdown_report(result, title=f"{model_label(model)}: frame-mAP"),
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def read_summary(ref: StageRef) -> dict[str, Any]:
    return json.loads(read_text(join(ref.uri, SUMMARY)))


# ---------------------------------------------------------------------------------------------
# Results history (parquet in the workspace)

HISTORY_SCHEMA = pa.schema([
    ("evaluated_at", pa.timestamp("s", tz="UTC")), ("head", pa.string()), ("split", pa.string()),
    ("mAP", pa.float64()), ("groups", pa.string()), ("epoch", pa.int64()), ("model_stage", pa.string()),
    ("model_key", pa.string()), ("extract_key", pa.string()), ("evaluate_key", pa.string()),
    ("bank", pa.string()), ("report", pa.string()), ("code_version", pa.string()),
])


def append_history(workspace: str, summary: dict[str, Any], evaluation: StageRef, extract: StageRef) -> None:
    """Add one row to the results history (read + rewrite + atomic rename: the table is small)."""
    row = {
        "evaluated_at": int(time.time()), "head": summary["head"], "split": summary["split"],
        "mAP": summary["mAP"], "groups": json.dumps(summary["groups"]), "epoch": summary["epoch"],
        "model_stage": summary["model_stage"], "model_key": summary["model_key"], "extract_key": extract.key,
        "evaluate_key": evaluation.key, "bank": bank_uris(extract)["long_term"],
        "report": join(evaluation.uri, "report", "frame_map.md"), "code_version": evaluation.code_version,
    }
    path = local_path(history_uri(workspace))
    with _HISTORY_LOCK:
        table = pa.Table.from_pylist([row], schema=HISTORY_SCHEMA)
        if path.exists():
            table = pa.concat_tables([pq.read_table(path, schema=HISTORY_SCHEMA), table])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)


def read_history(workspace: str) -> list[dict[str, Any]]:
    """Every history row, oldest first (empty when nothing was evaluated yet)."""
    path = local_path(history_uri(workspace))
    if not path.exists():
        return []
    rows = pq.read_table(path, schema=HISTORY_SCHEMA).to_pylist()
    for row in rows:
        row["groups"] = json.loads(row["groups"])
    return rows


# ---------------------------------------------------------------------------------------------
# Prefect artifacts


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def publish_artifacts(summary: dict[str, Any], evaluation: StageRef, extract: StageRef, workspace: str) -> None:
    """Tables, markdown with the PR plots, the history so far and a link to the evaluated bank."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    key = "".join(c if c.isalnum() else "-" for c in summary["head"].lower())
    create_table_artifact(
        [{"head": summary["head"], "split": summary["split"], "mAP": _pct(summary["mAP"]),
          **{g: _pct(v) for g, v in summary["groups"].items()}}],
        key=f"frame-map-{key}", description=f"frame-mAP@0.5 (%) of {summary['head']} on {summary['split']}")
    create_table_artifact(
        [{"id": c["id"], "class": c["name"], "group": c["group"], "AP": _pct(c["ap"]), "GT": c["gt"],
          "TP": c["tp"]} for c in summary["classes"]],
        key=f"per-class-ap-{key}", description=f"per-class AP (%) of {summary['head']}")
    plots = []
    for path in summary["plots"]:
        data = base64.b64encode(local_path(path).read_bytes()).decode()
        plots.append(f"![{path.rsplit('/', 1)[-1]}](data:image/png;base64,{data})")
    create_markdown_artifact(summary["markdown"] + "\n## precision-recall\n\n" + "\n\n".join(plots) + "\n",
                             key=f"report-{key}", description=f"frame-mAP report of {summary['head']}")
    rows = read_history(workspace)
    create_table_artifact(
        [{"evaluated_at": str(r["evaluated_at"]), "head": r["head"], "split": r["split"], "mAP": _pct(r["mAP"]),
          **{g: _pct(v) for g, v in r["groups"].items()}} for r in rows[-50:]],
        key="results-history", description="results history (latest 50 evaluations)")
    bank = bank_uris(extract)["long_term"]
    create_link_artifact(bank if "://" in bank else f"file://{bank}", link_text=f"long-term bank {extract.key}",
                         key=f"bank-{key}", description="the feature bank these results were computed from")


# ---------------------------------------------------------------------------------------------
# Flows


def _find(ws: Workspace, stage: str, key: str) -> StageRef:
    for ref in ws.history(stage):
        if ref.key == key:
            return ref
    raise StadError(f"no complete {stage} output with key {key} in {ws.root}")


def latest_model(ws: Workspace) -> StageRef:
    refs = [r for stage in MODEL_STAGES for r in ws.history(stage)]
    if not refs:
        raise StadError(f"evaluate needs a trained head in {ws.root}: run `stad run train` first")
    return max(refs, key=lambda r: local_path(join(r.uri, "_stage.json")).stat().st_mtime)


@flow(name="evaluate", log_prints=True, task_runner=default_task_runner())
def evaluate_flow(
    config: EvaluateConfig = EvaluateConfig(),
    workspace: str = "workspace",
    force: bool = False,
    model: StageRef | None = None,
    ingest: StageRef | None = None,
    extract: StageRef | None = None,
) -> StageRef:
    """Score ``model`` (a train or acfb output) on ``config.split``; append to the history."""
    ws = Workspace(workspace)
    model = model or latest_model(ws)
    ingest = ingest or _find(ws, "ingest", model.upstream["ingest"])
    extract = extract or _find(ws, "extract", model.upstream["extract"])
    planned = ws.plan(STAGE, config, upstream=[model, ingest, extract])
    done = reuse_or_begin(ws, planned, force=force)
    if done is not None:
        return done
    summary = submit_task(evaluate_task, gpu=True, config=config, stage_uri=planned.uri, model=model, ingest=ingest,
                          extract=extract).result()
    ref = ws.commit(replace(planned, counts={"actors": summary["actors"], "keyframes": summary["keyframes"]}))
    append_history(workspace, summary, ref, extract)
    publish_artifacts(summary, ref, extract, workspace)
    print(f"{summary['head']}: {config.split} frame-mAP {_pct(summary['mAP'])} "
          + " ".join(f"{g} {_pct(v)}" for g, v in summary["groups"].items()))
    return ref


@flow(name="reevaluate", log_prints=True, task_runner=default_task_runner())
def reevaluate_flow(
    config: EvaluateConfig = EvaluateConfig(),
    workspace: str = "workspace",
    force: bool = False,
) -> list[StageRef]:
    """Evaluate every complete train/acfb output that has no evaluation with ``config`` yet.

    Scheduled (the ``reevaluate`` deployment): new checkpoints — including heads trained on new
    banks, whose identity includes the bank's — get a history row and artifacts; evaluated ones
    are reused (no new row), so a run with nothing new is a cheap no-op.
    """
    ws = Workspace(workspace)
    out = []
    for stage in MODEL_STAGES:
        for model in ws.history(stage):
            if "ingest" not in model.upstream or "extract" not in model.upstream:
                continue
            out.append(evaluate_flow(config, workspace, force=force, model=model))
    print(f"reevaluate: {sum(not r.reused for r in out)} evaluated, {sum(r.reused for r in out)} already done")
    return out


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main(STAGE)
