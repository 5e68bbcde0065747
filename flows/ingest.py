"""Ingest stage: videos folder + AVA annotation files -> manifest.parquet + rejects.parquet.

Run alone: ``stad run ingest -c configs/ingest.yaml`` or ``python -m flows.ingest -c ...``. The
config's ``out_dir`` is replaced by the workspace folder of this run's identity.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.runtime import default_task_runner, reuse_or_begin, stage_progress
from flows.workspace import StageRef, Workspace, fingerprint_paths, join, local_path, read_text, write_text
from stad_core.errors import StadError
from stad_core.ingest import IngestConfig, ManifestEntry, build_manifest, manifest_entries, read_manifest

STAGE = "ingest"
MANIFEST = "manifest.parquet"
REJECTS = "rejects.parquet"
DATASET = "dataset.json"  # where the annotation files are: what train/evaluate need besides the manifest
# Where outputs go is decided by the workspace, so it must not be part of the identity either.
_OUTPUT_PLACEHOLDER = "<workspace>"


def identity_config(config: IngestConfig) -> IngestConfig:
    return config.model_copy(update={"out_dir": _OUTPUT_PLACEHOLDER})


def input_fingerprints(config: IngestConfig) -> dict[str, str]:
    """Cheap identities of the raw inputs, so edited videos or CSVs give a new manifest."""
    sources = [config.videos_dir, *config.annotation_files().values(), *config.exclusions]
    if config.labelmap:
        sources.append(config.labelmap)
    return {"sources": fingerprint_paths(sources)}


@task(name="build-manifest", cache_policy=NO_CACHE, persist_result=False)
def build_manifest_task(config: IngestConfig) -> dict[str, int | str]:
    result = build_manifest(config, on_progress=stage_progress(STAGE))
    return {
        "videos": result.num_videos,
        "keyframes": result.num_keyframes,
        "rejects": result.num_rejects,
        "content_hash": result.content_hash,
    }


@flow(name="ingest", log_prints=True, task_runner=default_task_runner())
def ingest_flow(
    config: IngestConfig = IngestConfig(),
    workspace: str = "workspace",
    force: bool = False,
    upstream: Sequence[StageRef] = (),
) -> StageRef:
    """Validate the videos and annotations and write the dataset manifest (and rejects table).

    ``upstream``: StageRefs of stages that produced the inputs (the pipeline passes synth's), so a
    regenerated dataset is a new ingest identity even before any file is compared.
    """
    ws = Workspace(workspace)
    planned = ws.plan(STAGE, identity_config(config), upstream=upstream, inputs=input_fingerprints(config))
    done = reuse_or_begin(ws, planned, force=force)
    if done is not None:
        return done
    out_dir = str(local_path(planned.uri))
    stats = build_manifest_task(config.model_copy(update={"out_dir": out_dir}))
    counts = {k: int(v) for k, v in stats.items() if k != "content_hash"}
    write_text(join(planned.uri, DATASET), json.dumps(DatasetFiles.from_config(config).to_json(), indent=1))
    # The manifest's content hash joins the identity seen by downstream stages via the inputs map.
    ref = replace(planned, counts=counts, inputs={**planned.inputs, "manifest": str(stats["content_hash"])})
    return ws.commit(ref)


def manifest_uri(ref: StageRef) -> str:
    return join(ref.uri, MANIFEST)


def _absolute(path: str | None) -> str | None:
    # Later stages may run from another directory (a deployment's worker): pin relative paths now.
    return None if path is None else (path if "://" in path else os.path.abspath(path))


@dataclass(frozen=True)
class DatasetFiles:
    """The annotation files an ingest output was built from (absolute paths)."""

    splits: dict[str, str]  # split -> ground-truth CSV
    exclusions: tuple[str, ...]
    labelmap: str | None
    time_offset: float

    @classmethod
    def from_config(cls, config: IngestConfig) -> DatasetFiles:
        return cls(
            splits={k: str(_absolute(v)) for k, v in config.annotation_files().items()},
            exclusions=tuple(str(_absolute(p)) for p in config.exclusions),
            labelmap=_absolute(config.labelmap),
            time_offset=float(config.time_offset),
        )

    def to_json(self) -> dict[str, Any]:
        return {"splits": self.splits, "exclusions": list(self.exclusions), "labelmap": self.labelmap,
                "time_offset": self.time_offset}

    def groundtruth(self, split: str) -> str:
        if split not in self.splits:
            raise StadError(f"the dataset has no {split!r} annotations (splits: {', '.join(self.splits) or 'none'})")
        return self.splits[split]

    def require_labelmap(self, needed_by: str) -> str:
        if self.labelmap is None:
            raise StadError(f"{needed_by} needs a label map: set ingest's labelmap and re-run ingest")
        return self.labelmap


def annotation_files(ref: StageRef) -> DatasetFiles:
    """The annotation files recorded by an ingest output."""
    uri = join(ref.uri, DATASET)
    try:
        data = json.loads(read_text(uri))
    except FileNotFoundError:
        raise StadError(f"{ref.uri} has no {DATASET} (written by an older stad): re-run `stad run ingest --force`") from None
    return DatasetFiles(dict(data["splits"]), tuple(data["exclusions"]), data["labelmap"], float(data["time_offset"]))


@lru_cache(maxsize=8)
def _entries(path: str, mtime_ns: int) -> tuple[ManifestEntry, ...]:
    return tuple(manifest_entries(read_manifest(path)))


def videos_of(ref: StageRef, splits: Sequence[str] | None = None) -> list[ManifestEntry]:
    """The manifest's videos (optionally of some splits), sorted by id; read once per process."""
    path = local_path(manifest_uri(ref))
    entries = _entries(str(path), path.stat().st_mtime_ns)  # a forced ingest rewrites the file in place
    return sorted((e for e in entries if splits is None or e.split in splits), key=lambda e: e.video_id)


if __name__ == "__main__":
    from flows.cli.run import stage_main

    stage_main(STAGE)
