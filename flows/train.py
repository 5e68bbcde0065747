"""Train stage: a relation head on the extract stage's banks -> ``checkpoint.pt`` + ``metrics.json``.

The config is ``stad_core.train.TrainConfig``. Its bank dimensions (``actor_dim``, ``long_term_dim``,
``context_dim``) and ``num_classes`` must equal the banks' and the label map's, so the flow fills
them in from those before planning: the identity is the effective config. Training checkpoints
every epoch (and every ``checkpoint_every`` steps); a re-run after a crash continues from the last
checkpoint with bit-identical results (the trainer's exact-resume contract).

Run alone: ``stad run train -c configs/train.yaml head=lfb fbo=max`` (latest ingest + extract).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.extract import bank_uris
from flows.gpu import gpu_device, submit_task
from flows.ingest import annotation_files
from flows.runtime import default_task_runner, reuse_or_begin, stage_progress
from flows.workspace import StageRef, Workspace, join, local_path
from stad_core.ava import LabelMap, read_ava_csv, read_exclusions, read_labelmap
from stad_core.ava.keys import KeyframeKey
from stad_core.ava.table import AvaTable
from stad_core.banks import FeatureBankReader
from stad_core.heads import HEADS
from stad_core.train import BankSet, ClassSpace, TrainConfig, Trainer, Validation
from storage import open_reader

STAGE = "train"
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
        from stad_core.errors import StadError

        if split not in self.splits:
            raise StadError(f"the dataset has no {split!r} ground truth (splits: {', '.join(self.splits)})")
        return read_ava_csv(self.splits[split], kind="groundtruth")


def load_dataset(ingest: StageRef, needed_by: str) -> Dataset:
    files = annotation_files(ingest)
    labelmap = read_labelmap(files.require_labelmap(needed_by))
    excluded: set[KeyframeKey] = set()
    for path in files.exclusions:
        excluded |= read_exclusions(path)
    return Dataset(labelmap, ClassSpace.from_label_map(labelmap), excluded, dict(files.splits))


def open_banks(extract: StageRef, actor_context: str | None = None) -> BankSet:
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
    return join(ref.uri, CHECKPOINT)


def fit_head(config: TrainConfig, banks: BankSet, data: Dataset, stage_uri: str, *, stage: str,
             init_state: dict[str, Any] | None = None) -> dict[str, int]:
    """Train (or resume) one head; writes the checkpoint and ``metrics.json``. Returns small counts."""
    out = local_path(stage_uri)
    ckpt = out / CHECKPOINT
    validation = None
    if "val" in data.splits:
        validation = Validation(banks, data.groundtruth("val"), data.labelmap, exclusions=data.exclusions)
    with gpu_device() as lease:
        trainer = Trainer(config, banks, data.groundtruth("train"), data.classes, validation=validation,
                          checkpoint_path=ckpt, device=lease.device)
        if ckpt.is_file():
            trainer.load(ckpt)  # exact resume after a crash (the checkpoint's config hash is checked)
        elif init_state is not None:
            trainer.head.load_acar_state_dict(init_state)  # ACFB starts from the trained ACAR head
        result = trainer.fit(on_progress=stage_progress(stage))
    history = [{"epoch": r.epoch, "train_loss": r.train_loss, "lr": r.lr, "val_map": r.val_map} for r in result.history]
    label = f"lfb_{config.fbo}" if config.head == "lfb" else config.head
    (out / METRICS).write_text(json.dumps({"head": config.head, "label": label, "history": history,
                                           "train_keyframes": len(trainer.samples)}, indent=1))
    return {"epochs": result.epoch, "steps": result.global_step, "train_keyframes": len(trainer.samples)}


@task(name="train-head", cache_policy=NO_CACHE, persist_result=False, tags=["gpu"])
def train_task(config: TrainConfig, stage_uri: str, ingest: StageRef, extract: StageRef) -> dict[str, int]:
    data = load_dataset(ingest, STAGE)
    return fit_head(config, open_banks(extract), data, stage_uri, stage=f"{STAGE}:{config.head}")


def plan_train(config: TrainConfig, ws: Workspace, ingest: StageRef, extract: StageRef) -> tuple[TrainConfig, StageRef]:
    data = load_dataset(ingest, STAGE)
    effective = effective_config(config, open_banks(extract), data.classes)
    return effective, ws.plan(STAGE, effective, upstream=[ingest, extract])


@flow(name="train", log_prints=True, task_runner=default_task_runner())
def train_flow(
    config: TrainConfig = TrainConfig(),
    workspace: str = "workspace",
    force: bool = False,
    ingest: StageRef | None = None,
    extract: StageRef | None = None,
) -> StageRef:
    """Train one head on the banks of ``extract`` with the ground truth of ``ingest``."""
    ws = Workspace(workspace)
    ingest = ingest or ws.require_latest("ingest", STAGE)
    extract = extract or ws.require_latest("extract", STAGE)
    effective, planned = plan_train(config, ws, ingest, extract)
    done = reuse_or_begin(ws, planned, force=force)
    if done is not None:
        return done
    if force:  # start over rather than resume the previous attempt
        (local_path(planned.uri) / CHECKPOINT).unlink(missing_ok=True)
    counts = submit_task(train_task, gpu=True, config=effective, stage_uri=planned.uri, ingest=ingest,
                         extract=extract).result()
    return ws.commit(replace(planned, counts=counts))


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main(STAGE)
