"""ACFB stage: a trained ACAR head -> an actor-context bank -> the ACFB head trained on it.

1. One GPU task per video runs the ACAR head (a ``train`` output with ``head=acar``) over every
   keyframe of the long-term bank and writes the first-order actor-context rows to
   ``actor_context.zarr`` (row-aligned with the long-term bank; resumable per video like extract).
2. The ACFB head (config: ``TrainConfig``; ``head`` is set to ``acfb``) is trained on the long-term,
   context and actor-context banks, starting from the ACAR head's weights.

Run alone: ``stad run acfb -c configs/acfb.yaml`` (latest ingest + extract, and the latest train
output whose head is acar).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import lru_cache
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.gpu import submit_task
from flows.runtime import default_task_runner, make_video_task, map_videos, reuse_or_begin, summarise, work_inputs
from flows.train import (
    CHECKPOINT,
    METRICS,
    checkpoint_uri,
    effective_config,
    fit_head,
    load_dataset,
    open_banks,
)
from flows.workspace import StageRef, Workspace, join, local_path, read_ref
from stad_core.banks import BankSpec
from stad_core.errors import StadError
from stad_core.train import BankSet, TrainConfig, infer_actor_context, load_trained_head
from storage import open_bank, open_reader

STAGE = "acfb"
ACTOR_CONTEXT = "actor_context.zarr"


def actor_context_uri(ref: StageRef) -> str:
    return join(ref.uri, ACTOR_CONTEXT)


def _sha256(uri: str) -> str:
    return hashlib.sha256(local_path(uri).read_bytes()).hexdigest()


@lru_cache(maxsize=2)
def _acar(checkpoint: str, sha256: str) -> Any:
    return load_trained_head(checkpoint).head  # sha256 in the key: a forced re-train rewrites the file


def acar_rows(*, video_id: str, stage_uri: str, device: str, acar_checkpoint: str, extract_uri: str,
              force: bool) -> dict[str, int]:
    """Actor-context rows of one video, written to the stage's actor-context bank."""
    head = _acar(acar_checkpoint, _sha256(acar_checkpoint))
    extract = read_ref(extract_uri)
    if extract is None:
        raise StadError(f"{extract_uri}: extract output is not complete")
    bank = open_bank(join(stage_uri, ACTOR_CONTEXT), "a")
    rows = 0
    for vid, found in infer_actor_context(head.to(device), open_banks(extract), videos=[video_id], device=device):
        bank.write_video(vid, found)  # atomic per video; a forced run simply replaces it
        rows += len(found)
    return {"actor_context_rows": rows}


def actor_context_complete(*, video_id: str, stage_uri: str, **_: Any) -> bool:
    return open_bank(join(stage_uri, ACTOR_CONTEXT), "r").is_complete(video_id)


acar_rows_task = make_video_task(acar_rows, name="actor-context-video", gpu=True, is_complete=actor_context_complete)


@task(name="train-acfb", cache_policy=NO_CACHE, persist_result=False, tags=["gpu"])
def train_acfb_task(config: TrainConfig, stage_uri: str, ingest: StageRef, extract: StageRef,
                    acar_checkpoint: str) -> dict[str, int]:
    data = load_dataset(ingest, STAGE)
    banks = open_banks(extract, actor_context=join(stage_uri, ACTOR_CONTEXT))
    init = load_trained_head(acar_checkpoint).head.state_dict()
    return fit_head(config, banks, data, stage_uri, stage=STAGE, init_state=init)


def latest_acar(ws: Workspace) -> StageRef:
    """The newest complete train output whose head is ACAR (what a standalone acfb run builds on)."""
    for ref in ws.history("train"):
        try:
            if json.loads(local_path(join(ref.uri, METRICS)).read_text())["head"] == "acar":
                return ref
        except (OSError, ValueError, KeyError):
            continue
    raise StadError(f"acfb needs a trained ACAR head in {ws.root}: run `stad run train head=acar` first")


#: TrainConfig fields that shape the ACAR part of an ACFB head (taken from the ACAR head it starts from)
ACAR_ARCHITECTURE = ("latent_dim", "reduced_dim", "depth", "norm_groups", "actor_location")


@flow(name="acfb", log_prints=True, task_runner=default_task_runner())
def acfb_flow(
    config: TrainConfig = TrainConfig(head="acfb"),
    workspace: str = "workspace",
    force: bool = False,
    ingest: StageRef | None = None,
    extract: StageRef | None = None,
    acar: StageRef | None = None,
) -> StageRef:
    """Actor-context bank from the ACAR head of ``acar``, then the ACFB head trained on it."""
    ws = Workspace(workspace)
    ingest = ingest or ws.require_latest("ingest", STAGE)
    extract = extract or ws.require_latest("extract", STAGE)
    acar = acar or latest_acar(ws)
    acar_ckpt = checkpoint_uri(acar)
    trained = load_trained_head(acar_ckpt)
    if trained.config.head != "acar":
        raise StadError(f"acfb builds on an ACAR head; {acar.uri} trained {trained.config.head!r}")
    data = load_dataset(ingest, STAGE)
    banks = open_banks(extract)
    spec = BankSpec(
        kind="actor_context", feature_dim=trained.config.latent_dim, dtype="float32",
        backbone=f"acar:{banks.actors.spec.backbone}", checkpoint_sha256=_sha256(acar_ckpt),
        clip_num_frames=banks.actors.spec.clip_num_frames, clip_stride=banks.actors.spec.clip_stride,
        detector_source=banks.actors.spec.detector_source, code_version=banks.actors.spec.code_version,
    )
    # ACFB reads the ACAR head's actor-context features, so their width fixes actor_context_dim; it
    # starts from that head's weights, so its ACAR part takes that head's architecture.
    effective = effective_config(config.model_copy(update={"head": "acfb"}), banks, data.classes)
    acar_arch = {k: getattr(trained.config, k) for k in ACAR_ARCHITECTURE}
    effective = effective.model_copy(update={"actor_context_dim": spec.feature_dim, **acar_arch})
    planned = ws.plan(STAGE, effective, upstream=[ingest, extract, acar])
    done = reuse_or_begin(ws, planned, force=force)
    if done is not None:
        return done
    if force:
        (local_path(planned.uri) / CHECKPOINT).unlink(missing_ok=True)
    open_bank(actor_context_uri(planned), "a", spec)
    videos = banks.actors.videos()
    results = map_videos(
        acar_rows_task, videos, stage=STAGE, stage_uri=planned.uri, config_hash=planned.config_hash,
        code_version=planned.code_version, inputs=work_inputs(planned), force=force, gpu=True,
        params={"acar_checkpoint": acar_ckpt, "extract_uri": extract.uri, "force": force},
    )
    counts = submit_task(train_acfb_task, gpu=True, config=effective, stage_uri=planned.uri, ingest=ingest,
                         extract=extract, acar_checkpoint=acar_ckpt).result()
    return ws.commit(replace(planned, counts={**summarise(results), **counts}))


def acfb_banks(ref: StageRef, extract: StageRef) -> BankSet:
    """The banks an ACFB head reads: extract's plus this output's actor-context bank."""
    banks = open_banks(extract)
    return BankSet(banks.actors, banks.context, open_reader(actor_context_uri(ref)))


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main(STAGE)
