"""train: a relation head on the extract stage's banks -> ``checkpoint.pt`` + ``metrics.json``.

The config is ``stad_core.train.TrainConfig``. Its bank dimensions (``actor_dim``, ``long_term_dim``,
``context_dim``) and ``num_classes`` must equal the banks' and the label map's, so prepare fills them
in from those: the identity is the effective config. Training checkpoints every epoch (and every
``checkpoint_every`` steps); a re-run after a crash continues from the last checkpoint with
bit-identical results (the trainer's exact-resume contract).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stad_core.atomic import atomic_write_text
from stad_core.ava import LabelMap, read_ava_csv, read_exclusions, read_labelmap
from stad_core.ava.keys import KeyframeKey
from stad_core.ava.table import AvaTable
from stad_core.banks import FeatureBankReader
from stad_core.errors import StadError
from stad_core.heads import HEADS
from stad_core.heads.variants import variant_name
from stad_core.train import BankSet, ClassSpace, TrainConfig, Trainer, Validation
from storage import open_reader
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.extract import bank_uris
from storage.stages.ingest import dataset_of
from storage.stages.progress import stage_progress
from storage.uri import local_path
from storage.workspace import StageRef, Workspace

NAME = "train"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
BANK_CACHE = 64 << 20  # chunk cache per bank: a tiny dataset's bank fits, a big one streams


@dataclass(frozen=True)
class Dataset:
    """Ground truth and label map of one ingest output, read for training or evaluation."""

    labelmap: LabelMap
    classes: ClassSpace
    exclusions: set[KeyframeKey]
    splits: dict[str, str]

    def groundtruth(self, split: str) -> AvaTable:
        if split not in self.splits:
            raise StadError(f"the dataset has no {split!r} ground truth (splits: {', '.join(self.splits)})")
        return read_ava_csv(self.splits[split], kind="groundtruth")

    def trainable(self, split: str) -> AvaTable:
        """``split``'s ground truth without its excluded keyframes: their bank rows serve long-term
        windows only (ingest keeps them for that), never as training examples."""
        table = self.groundtruth(split)
        return table.select(~table.in_keyframes(self.exclusions)) if self.exclusions else table


def load_dataset(ingest: StageRef, needed_by: str) -> Dataset:
    files = dataset_of(ingest)
    labelmap = read_labelmap(files.require_labelmap(needed_by))
    excluded: set[KeyframeKey] = set()
    for path in files.exclusions:
        excluded |= read_exclusions(path)
    return Dataset(labelmap, ClassSpace.from_label_map(labelmap), excluded, dict(files.splits))


def open_banks(extract: StageRef, actor_context: str | None = None) -> BankSet:
    """The banks of an extract output (plus an actor-context bank), read-only."""
    uris = bank_uris(extract)
    context = open_reader(uris["context"], cache_bytes=BANK_CACHE) if "context" in uris else None
    ac = open_reader(actor_context, cache_bytes=BANK_CACHE) if actor_context else None
    return BankSet(open_reader(uris["long_term"], cache_bytes=BANK_CACHE), context, ac)


def effective_config(config: TrainConfig, banks: BankSet, classes: ClassSpace,
                     actor_context: FeatureBankReader | None = None) -> TrainConfig:
    """``config`` with the dimensions the banks and label map dictate (a head that does not use a
    bank keeps that dimension unset, so it does not change the identity)."""
    head = HEADS[config.head]
    dims: dict[str, Any] = {"num_classes": classes.num_classes, "actor_dim": banks.actors.spec.feature_dim}
    if getattr(head, "uses_long_term", False):
        dims["long_term_dim"] = banks.actors.spec.feature_dim
    if getattr(head, "uses_context", False) and banks.context is not None:
        dims["context_dim"] = banks.context.spec.feature_dim
    if getattr(head, "uses_actor_context", False) and actor_context is not None:
        dims["actor_context_dim"] = actor_context.spec.feature_dim
    return config.model_copy(update=dims)


def checkpoint_uri(ref: StageRef) -> str:
    return ref.path(CHECKPOINT)


def fit_head(config: TrainConfig, banks: BankSet, data: Dataset, stage_uri: str, *, stage: str, device: str,
             init_state: dict[str, Any] | None = None) -> dict[str, int]:
    """Train (or resume) one head; writes the checkpoint and ``metrics.json``. Returns small counts."""
    out = local_path(stage_uri)
    ckpt = out / CHECKPOINT
    validation = None
    if "val" in data.splits:
        validation = Validation(banks, data.groundtruth("val"), data.labelmap, exclusions=data.exclusions)
    trainer = Trainer(config, banks, data.trainable("train"), data.classes, validation=validation,
                      checkpoint_path=ckpt, device=device)
    if ckpt.is_file():
        trainer.load(ckpt)  # exact resume after a crash (the checkpoint's config hash is checked)
    elif init_state is not None:
        trainer.head.load_acar_state_dict(init_state)  # ACFB starts from the trained ACAR head
    result = trainer.fit(on_progress=stage_progress(stage))
    history = [{"epoch": r.epoch, "train_loss": r.train_loss, "lr": r.lr, "val_map": r.val_map} for r in result.history]
    atomic_write_text(out / METRICS, json.dumps({"head": config.head, "label": variant_name(config.head, config.fbo),
                                                 "history": history, "train_keyframes": len(trainer.samples)}, indent=1))
    return {"epochs": result.epoch, "steps": result.global_step, "train_keyframes": len(trainer.samples)}


def prepare(ws: Workspace, config: TrainConfig, upstream: dict[str, StageRef]) -> StagePlan:
    ingest, extract = upstream["ingest"], upstream["extract"]
    if config.head == "acfb":
        raise StadError("head=acfb is trained by the acfb stage (`stad run acfb`): it needs an ACAR head's bank")
    effective = effective_config(config, open_banks(extract), load_dataset(ingest, NAME).classes)
    return StagePlan(ws.plan(NAME, effective, upstream=[ingest, extract]), effective, upstream)


def start(plan: StagePlan, force: bool) -> None:
    if force:  # start over rather than resume the previous attempt
        (local_path(plan.ref.uri) / CHECKPOINT).unlink(missing_ok=True)


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, TrainConfig)
    data = load_dataset(plan.upstream["ingest"], NAME)
    counts = fit_head(config, open_banks(plan.upstream["extract"]), data, plan.ref.uri,
                      stage=f"{NAME}:{variant_name(config.head, config.fbo)}", device=device)
    return Finished(counts)


STAGE = Stage(NAME, TrainConfig, "train a relation head on the banks -> checkpoint + metrics",
              upstream=("ingest", "extract"), gpu=True, prepare=prepare, start=start, finish=finish,
              default_config="configs/train.yaml")
