"""temporal_evaluate: a trained temporal head on a split -> the Charades localization submission file
(``submission.txt``), ``summary.json`` (Charades_v1_localize mAP, per-class AP) and a row of the
workspace's results history. Run alone: the latest temporal_train output and the ingest/extract
outputs it was trained on."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from stad_core.atomic import atomic_write_text
from stad_core.temporal.configs import TemporalEvaluateConfig
from stad_core.temporal.metric import charades_localize
from stad_core.temporal.submission import format_submission
from stad_core.temporal.train import TemporalTrainConfig, localize_predictions, make_head, predict
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.evaluate import history_uri
from storage.stages.temporal_extract import bank_uri
from storage.stages.temporal_train import CHECKPOINT, load_set
from storage.tables import append_history
from storage.uri import join, local_path
from storage.workspace import StageRef, Workspace

NAME = "temporal_evaluate"
SUBMISSION, SUMMARY = "submission.txt", "summary.json"


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    model = given.get("temporal_train") or ws.require_latest("temporal_train", NAME)
    return {"temporal_train": model,
            "temporal_ingest": given.get("temporal_ingest") or ws.find("temporal_ingest", model.upstream["temporal_ingest"]),
            "temporal_extract": given.get("temporal_extract")
            or ws.find("temporal_extract", model.upstream["temporal_extract"])}


def prepare(ws: Workspace, config: TemporalEvaluateConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ups = [upstream["temporal_train"], upstream["temporal_ingest"], upstream["temporal_extract"]]
    return StagePlan(ws.plan(NAME, config, upstream=ups), config, upstream, shared={"workspace": ws.root})


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, TemporalEvaluateConfig)
    model, ingest, extract = (plan.upstream[k] for k in ("temporal_train", "temporal_ingest", "temporal_extract"))
    state = torch.load(local_path(model.path(CHECKPOINT)), map_location="cpu", weights_only=False)
    train_config = TemporalTrainConfig.model_validate(state["config"])
    head = make_head(train_config)
    head.load_state_dict(state["state"])
    head.eval().to(device)
    data = load_set(ingest, extract, config.split, train_config, norm=state["norm"])
    preds = localize_predictions(data.videos, predict(head, data, device=device), config.frames_per_video)
    result = charades_localize(data.videos, preds, int(train_config.num_classes or 0), config.frames_per_video)
    out = local_path(plan.ref.uri)
    atomic_write_text(out / SUBMISSION, format_submission((v, j, s) for (v, j), s in preds.items()))
    summary = {"head": train_config.head, "split": config.split, "mAP": _finite(result.map), "wAP": _finite(result.wap),
               "videos": len(data.videos), "model": model.path_in_workspace,
               "classes": [{"index": i, "ap": _finite(float(a)), "positives": int(p)}
                           for i, (a, p) in enumerate(zip(result.ap, result.positives, strict=True))]}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1))
    ws = Workspace(plan.shared["workspace"])
    append_history(local_path(history_uri(ws.root)), {
        "head": f"temporal:{train_config.head}", "split": config.split, "mAP": summary["mAP"],
        "groups": {"wAP": summary["wAP"]}, "epoch": int(train_config.epochs), "model_stage": model.stage,
        "model_key": model.key, "extract_key": extract.key, "evaluate_key": plan.ref.key,
        "bank": ws.relative(bank_uri(extract)), "report": ws.relative(join(plan.ref.uri, SUMMARY)),
        "code_version": plan.ref.code_version,
    })
    return Finished({"videos": len(data.videos), "map_x1e4": int(round(1e4 * np.nan_to_num(result.map)))},
                    extra={"summary": summary})


STAGE = Stage(NAME, TemporalEvaluateConfig, "score a temporal head: Charades_v1_localize mAP, submission file",
              upstream=("temporal_train", "temporal_ingest", "temporal_extract"), gpu=True, prepare=prepare,
              resolve=resolve, finish=finish, default_config="configs/temporal_evaluate.yaml")
