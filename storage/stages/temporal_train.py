"""temporal_train: a temporal head (Coarse-Fine or a baseline) on the fine bank -> ``checkpoint.pt`` +
``metrics.json``. The head's input dimensions and class count come from the bank and the
manifest (prepare fills them in: the identity is the effective config)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from stad_core.atomic import atomic_write, atomic_write_text
from stad_core.errors import StadError
from stad_core.temporal.features import COARSE
from stad_core.temporal.fine_bank import from_rows, layout
from stad_core.temporal.train import TemporalSet, TemporalTrainConfig, build_set, checkpoint, fit
from storage import open_reader
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.progress import stage_progress
from storage.stages.temporal_extract import bank_uri
from storage.stages.temporal_ingest import entries_of, num_classes_of
from storage.uri import local_path
from storage.workspace import StageRef, Workspace

NAME = "temporal_train"
CHECKPOINT, METRICS = "checkpoint.pt", "metrics.json"


def depths_for(config: TemporalTrainConfig, bank: Any) -> list[str]:
    available = [d for d in layout(bank.spec) if d != COARSE]
    depths = list(config.fine_depths) if config.fine_depths else available
    unknown = [d for d in depths if d not in available]
    if unknown:
        raise StadError(f"fine_depths {unknown} are not in the bank (it has {', '.join(available)})")
    return depths


def load_set(ingest: StageRef, extract: StageRef, split: str, config: TemporalTrainConfig,
             norm: dict[str, Any] | None = None) -> TemporalSet:
    bank = open_reader(bank_uri(extract))
    entries = [e for e in entries_of(ingest, (split,)) if bank_has(bank, e.video_id)]
    if not entries:
        raise StadError(f"no {split} video of the manifest is in the fine bank {bank_uri(extract)}")
    return build_set([e.video for e in entries], lambda v: from_rows(bank.read_video(v), bank.spec),
                     depths_for(config, bank), num_classes_of(ingest), config.input_steps, norm=norm)


def bank_has(bank: Any, video_id: str) -> bool:
    return video_id in set(bank.videos())


def prepare(ws: Workspace, config: TemporalTrainConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ingest, extract = upstream["temporal_ingest"], upstream["temporal_extract"]
    bank = open_reader(bank_uri(extract))
    cols = layout(bank.spec)
    depths = depths_for(config, bank)
    effective = config.model_copy(update={
        "coarse_dim": cols[COARSE].stop - cols[COARSE].start,
        "fine_dims": tuple(cols[d].stop - cols[d].start for d in depths),
        "num_classes": num_classes_of(ingest), "fine_depths": tuple(depths)})
    return StagePlan(ws.plan(NAME, effective, upstream=[ingest, extract]), effective, upstream)


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, TemporalTrainConfig)
    data = load_set(plan.upstream["temporal_ingest"], plan.upstream["temporal_extract"], "train", config)
    progress = stage_progress(f"{NAME}:{config.head}")
    result = fit(config, data, device=device, on_epoch=lambda e, _loss: progress(e, config.epochs))
    out = local_path(plan.ref.uri)
    state = checkpoint(config, result.head.cpu(), data, list(config.fine_depths or ()))
    atomic_write(out / CHECKPOINT, lambda p: torch.save(state, p))
    atomic_write_text(out / METRICS, json.dumps({"head": config.head, "losses": result.losses,
                                                 "train_videos": len(data.videos)}, indent=1))
    return Finished({"epochs": config.epochs, "train_videos": len(data.videos),
                     "final_loss_x1e4": int(round(1e4 * float(np.mean(result.losses[-1:]))))})


STAGE = Stage(NAME, TemporalTrainConfig, "train a temporal head (Coarse-Fine or a baseline) on the fine bank",
              upstream=("temporal_ingest", "temporal_extract"), gpu=True, prepare=prepare, finish=finish,
              default_config="configs/temporal_train.yaml")
