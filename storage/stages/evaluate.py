"""evaluate: a trained head on a split -> AVA detections CSV, frame-mAP report, history row.

Outputs in ``<ws>/evaluate/<hash>-<key>/``: ``detections.csv`` (AVA format), ``report/``
(``frame_map.json``, ``frame_map.md``, ``pr_<group>.png``) and ``summary.json``. Each evaluation
that runs adds one row to ``<ws>/history/results.parquet`` (``stad history`` prints it). Run alone,
it scores the newest train/acfb output on the ingest and extract outputs that model was built from.
"""

from __future__ import annotations

import json
import math
from typing import Any

from stad_core.atomic import atomic_write_text
from stad_core.ava.keys import KeyframeKey
from stad_core.errors import StadError
from stad_core.evaluation import markdown_report, write_report
from stad_core.heads.variants import variant_name
from stad_core.stage_configs import EvaluateConfig
from stad_core.train import evaluate_predictions, load_trained_head, predict, write_predictions_csv
from storage.stages.acfb import acfb_banks
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.extract import bank_uris
from storage.stages.progress import stage_progress
from storage.stages.train import CHECKPOINT, load_dataset, open_banks
from storage.tables import append_history, read_history
from storage.uri import join, local_path
from storage.workspace import STAGE_REF_FILE, StageRef, Workspace, read_text

NAME = "evaluate"
SUMMARY = "summary.json"
HISTORY = ("history", "results.parquet")
MODEL_STAGES = ("train", "acfb")


def history_uri(workspace: str) -> str:
    return join(Workspace(workspace).root, *HISTORY)


def workspace_history(workspace: str) -> list[dict[str, Any]]:
    """Every evaluation of ``workspace``, oldest first."""
    return read_history(local_path(history_uri(workspace)))


def read_summary(ref: StageRef) -> dict[str, Any]:
    return json.loads(read_text(ref.path(SUMMARY)))


def latest_model(ws: Workspace) -> StageRef:
    refs = [r for stage in MODEL_STAGES for r in ws.history(stage)]
    if not refs:
        raise StadError(f"evaluate needs a trained head in {ws.root}: run `stad run train` first")
    return max(refs, key=lambda r: local_path(r.path(STAGE_REF_FILE)).stat().st_mtime)


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    model = given.get("model") or latest_model(ws)
    return {"model": model,
            "ingest": given.get("ingest") or ws.find("ingest", model.upstream["ingest"]),
            "extract": given.get("extract") or ws.find("extract", model.upstream["extract"])}


def prepare(ws: Workspace, config: EvaluateConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ref = ws.plan(NAME, config, upstream=[upstream["model"], upstream["ingest"], upstream["extract"]])
    return StagePlan(ref, config, upstream, shared={"workspace": ws.root})


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, EvaluateConfig)
    model, ingest, extract = plan.upstream["model"], plan.upstream["ingest"], plan.upstream["extract"]
    out = local_path(plan.ref.uri)
    data = load_dataset(ingest, NAME)
    gt = data.groundtruth(config.split)
    banks = acfb_banks(model, extract) if model.stage == "acfb" else open_banks(extract)
    trained = load_trained_head(local_path(model.path(CHECKPOINT)), device=device)
    label = variant_name(trained.config.head, trained.config.fbo)
    kv, kt, _ = gt.keyframe_groups()
    keyframes = [KeyframeKey.at(gt.videos[i], t) for i, t in zip(kv.tolist(), kt.tolist())]
    predictions = predict(trained.head, banks, trained.loss, trained.classes,
                          window_width=trained.config.window_width,
                          window_per_second=trained.config.window_per_second, keyframes=keyframes,
                          batch_size=trained.config.batch_size, device=device, on_progress=stage_progress(NAME))
    write_predictions_csv(out / "detections.csv", predictions, min_score=config.min_score)
    result = evaluate_predictions(predictions, gt, data.labelmap, exclusions=data.exclusions, protocol=config.protocol)
    files = write_report(result, out / "report", plots=config.plots)
    ws = Workspace(plan.shared["workspace"])
    summary = {
        "head": label, "model_stage": model.stage, "model_key": model.key, "model": model.path_in_workspace,
        "epoch": trained.epoch, "split": config.split, "protocol": config.protocol,
        "mAP": _finite(result.mAP), "groups": {name: _finite(v) for name, (_, v) in result.groups.items()},
        "classes": [{"id": c.id, "name": c.name, "group": c.group, "ap": _finite(c.ap), "gt": c.num_gt,
                     "detections": c.num_det, "tp": c.num_tp} for c in result.classes],
        "actors": len(predictions), "keyframes": len(keyframes),
        "plots": [ws.relative(p) for p in files.plots],
        "markdown": markdown_report(result, title=f"{label}: frame-mAP"),
    }
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1))
    append_history(local_path(history_uri(ws.root)), {
        "head": label, "split": config.split, "mAP": summary["mAP"], "groups": summary["groups"],
        "epoch": trained.epoch, "model_stage": model.stage, "model_key": model.key, "extract_key": extract.key,
        "evaluate_key": plan.ref.key, "bank": ws.relative(bank_uris(extract)["long_term"]),
        "report": ws.relative(join(plan.ref.uri, "report", "frame_map.md")), "code_version": plan.ref.code_version,
    })
    return Finished({"actors": len(predictions), "keyframes": len(keyframes)}, extra={"summary": summary})


STAGE = Stage(NAME, EvaluateConfig,
              "score a trained head: AVA CSV, frame-mAP report, history row, Prefect artifacts",
              upstream=("model", "ingest", "extract"), gpu=True, prepare=prepare, resolve=resolve, finish=finish,
              default_config="configs/evaluate.yaml")
