"""acfb: a trained ACAR head -> an actor-context bank -> the ACFB head trained on it.

1. One unit of work per video runs the ACAR head (a ``train`` output with ``head=acar``) over every
   keyframe of the long-term bank and writes the first-order actor-context rows to
   ``actor_context.zarr`` (row-aligned with the long-term bank; resumable per video like extract).
   The bank's dtype is the long-term bank's (the spec is the one source of truth for it).
2. The ACFB head (config: ``TrainConfig`` with ``head: acfb``) is trained on the long-term, context
   and actor-context banks, starting from the ACAR head's weights and taking its architecture.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from typing import Any

from stad_core.banks import BankSpec
from stad_core.errors import StadError
from stad_core.heads import acar_architecture
from stad_core.train import BankSet, TrainConfig, infer_actor_context, load_trained_head
from storage import open_bank, open_reader
from storage.exports import sha256_file
from storage.stages.base import Finished, Stage, StagePlan, VideoWork, model_slot
from storage.stages.train import (
    CHECKPOINT,
    METRICS,
    checkpoint_uri,
    effective_config,
    fit_head,
    load_dataset,
    open_banks,
)
from storage.uri import local_path
from storage.workspace import StageRef, Workspace

NAME = "acfb"
ACTOR_CONTEXT = "actor_context.zarr"


def actor_context_uri(ref: StageRef) -> str:
    return ref.path(ACTOR_CONTEXT)


def acfb_banks(ref: StageRef, extract: StageRef) -> BankSet:
    """The banks an ACFB head reads: extract's plus this output's actor-context bank."""
    banks = open_banks(extract)
    return BankSet(banks.actors, banks.context, open_reader(actor_context_uri(ref)))


def latest_acar(ws: Workspace) -> StageRef:
    """The newest complete train output whose head is ACAR (what a standalone acfb run builds on)."""
    for ref in ws.history("train"):
        try:
            if json.loads(local_path(ref.path(METRICS)).read_text())["head"] == "acar":
                return ref
        except (OSError, ValueError, KeyError):
            continue
    raise StadError(f"acfb needs a trained ACAR head in {ws.root}: run `stad run train head=acar` first")


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    return {"ingest": given.get("ingest") or ws.require_latest("ingest", NAME),
            "extract": given.get("extract") or ws.require_latest("extract", NAME),
            "acar": given.get("acar") or latest_acar(ws)}


def prepare(ws: Workspace, config: TrainConfig, upstream: dict[str, StageRef]) -> StagePlan:
    if "head" in config.model_fields_set and config.head != "acfb":
        raise StadError(f"the acfb stage trains head=acfb; its config says head={config.head!r} "
                        "(drop the setting, or train that head with `stad run train`)")
    ingest, extract, acar = upstream["ingest"], upstream["extract"], upstream["acar"]
    acar_ckpt = checkpoint_uri(acar)
    trained = load_trained_head(local_path(acar_ckpt))
    if trained.config.head != "acar":
        raise StadError(f"acfb builds on an ACAR head; {acar.uri} trained {trained.config.head!r}")
    banks = open_banks(extract)
    actors = banks.actors.spec
    spec = BankSpec(
        kind="actor_context", feature_dim=trained.config.latent_dim, dtype=actors.dtype,
        backbone=f"acar:{actors.backbone}", checkpoint_sha256=sha256_file(local_path(acar_ckpt)),
        clip_num_frames=actors.clip_num_frames, clip_stride=actors.clip_stride,
        detector_source=actors.detector_source, code_version=actors.code_version,
    )
    # ACFB reads the ACAR head's actor-context features, so their width fixes actor_context_dim; it
    # starts from that head's weights, so its ACAR part takes that head's architecture.
    effective = effective_config(config.model_copy(update={"head": "acfb"}),
                                 banks, load_dataset(ingest, NAME).classes)
    effective = effective.model_copy(update={"actor_context_dim": spec.feature_dim,
                                             **acar_architecture(trained.config)})
    ref = ws.plan(NAME, effective, upstream=[ingest, extract, acar])
    videos = tuple(VideoWork(v) for v in banks.actors.videos())
    return StagePlan(ref, effective, upstream, videos,
                     shared={"acar_checkpoint": acar_ckpt, "extract": extract, "spec": spec})


def start(plan: StagePlan, force: bool) -> None:
    if force:
        (local_path(plan.ref.uri) / CHECKPOINT).unlink(missing_ok=True)
    open_bank(actor_context_uri(plan.ref), "a", plan.shared["spec"])


@lru_cache(maxsize=2)
def _acar(checkpoint: str, sha256: str) -> Any:
    return load_trained_head(checkpoint).head  # sha256 in the key: a forced re-train rewrites the file


def acar_rows(*, video_id: str, stage_uri: str, device: str, force: bool, acar_checkpoint: str, extract: StageRef,
              spec: BankSpec) -> dict[str, int]:
    """Actor-context rows of one video, written to the stage's actor-context bank."""
    path = str(local_path(acar_checkpoint))
    head = _acar(path, sha256_file(path))
    bank = open_bank(f"{stage_uri.rstrip('/')}/{ACTOR_CONTEXT}", "a", spec)
    rows = 0
    with model_slot(device):
        found_rows = list(infer_actor_context(head.to(device), open_banks(extract), videos=[video_id], device=device))
    for vid, found in found_rows:
        # The head computes in float32; the bank stores its spec's dtype (the long-term bank's).
        bank.write_video(vid, replace(found, features=found.features.astype(spec.numpy_dtype, copy=False)))
        rows += len(found)
    return {"actor_context_rows": rows}


def actor_context_complete(*, video_id: str, stage_uri: str, **_: Any) -> bool:
    return open_bank(f"{stage_uri.rstrip('/')}/{ACTOR_CONTEXT}", "r").is_complete(video_id)


def finish(plan: StagePlan, device: str) -> Finished:
    config = plan.config
    assert isinstance(config, TrainConfig)
    data = load_dataset(plan.upstream["ingest"], NAME)
    banks = open_banks(plan.upstream["extract"], actor_context=actor_context_uri(plan.ref))
    init = load_trained_head(local_path(plan.shared["acar_checkpoint"])).head.state_dict()
    return Finished(fit_head(config, banks, data, plan.ref.uri, stage=NAME, device=device, init_state=init))


STAGE = Stage(NAME, TrainConfig, "ACAR head -> actor-context bank -> train the ACFB head",
              upstream=("ingest", "extract", "acar"), gpu=True, prepare=prepare, resolve=resolve, start=start,
              video=acar_rows, video_complete=actor_context_complete, finish=finish,
              default_config="configs/acfb.yaml")
