"""ingest: videos folder + AVA annotation files -> ``manifest.parquet`` + ``rejects.parquet`` +
``dataset.json`` (where the annotation files are, for the stages that read ground truth).

Paths inside the workspace (a synthetic dataset's videos and CSVs) are recorded workspace-relative,
every other path absolute, so a copied workspace reads its own dataset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import pyarrow as pa

from stad_core.config import build_config
from stad_core.errors import StadError
from stad_core.ingest import IngestConfig, ManifestEntry, build_manifest, manifest_entries, read_manifest, table_hash
from storage.stages.base import Finished, Stage, StagePlan
from storage.stages.progress import stage_progress
from storage.stages.synth import dataset_files
from storage.tables import write_parquet
from storage.uri import join, local_path
from storage.workspace import StageRef, Workspace, fingerprint_paths, read_text, write_text

NAME = "ingest"
MANIFEST = "manifest.parquet"
REJECTS = "rejects.parquet"
DATASET = "dataset.json"
# Where outputs go is decided by the workspace, so it must not be part of the identity either.
_OUTPUT_PLACEHOLDER = "<workspace>"


def config_for_synth(base: IngestConfig, synth: StageRef) -> IngestConfig:
    """``base`` pointed at a synth output (annotation keyframes on the video's own clock)."""
    files = dataset_files(synth)
    values = base.model_dump()
    values.update(
        videos_dir=files["videos_dir"], train_csv=files["train_csv"], val_csv=files["val_csv"], test_csv=None,
        exclusions=[files["exclusions"]], labelmap=files["labelmap"], keyframes="annotations",
        keyframe_range=None, time_offset=0.0,
    )
    return build_config(IngestConfig, values, source="ingest of the synth output")


def resolve(ws: Workspace, given: dict[str, StageRef]) -> dict[str, StageRef]:
    return {"synth": given["synth"]} if "synth" in given else {}


_DATASET_FIELDS = {"videos_dir", "train_csv", "val_csv", "test_csv", "exclusions", "labelmap"}


def prepare(ws: Workspace, config: IngestConfig, upstream: dict[str, StageRef]) -> StagePlan:
    if "synth" not in upstream and not config.model_fields_set & _DATASET_FIELDS:
        # Run alone with no dataset of its own: ingest the workspace's synthetic dataset, as the
        # pipeline does (`stad run synth -w ws && stad run ingest -w ws`).
        synth = ws.latest("synth")
        if synth is None:
            raise StadError(f"ingest has no dataset: set videos_dir and the annotation files (configs/ingest.yaml), "
                            f"or run `stad run synth -w {ws.root}` first to ingest the synthetic dataset")
        upstream = {**upstream, "synth": synth}
    # Identity: the config without its output folder, plus cheap fingerprints of the raw inputs (an
    # edited video or CSV gives a new manifest). A synth output's key already identifies its files,
    # and their paths depend on where the workspace is, so they stay out of the identity.
    identity = config.model_copy(update={"out_dir": _OUTPUT_PLACEHOLDER})
    if "synth" in upstream:
        config = config_for_synth(config, upstream["synth"])
        inputs: dict[str, str] = {}
    else:
        sources = [config.videos_dir, *config.annotation_files().values(), *config.exclusions, config.labelmap]
        inputs = {"sources": fingerprint_paths(sources)}
    ref = ws.plan(NAME, identity, upstream=list(upstream.values()), inputs=inputs)
    return StagePlan(ref, identity, upstream, shared={"config": config, "workspace": ws.root})


def finish(plan: StagePlan, device: str) -> Finished:
    config: IngestConfig = plan.shared["config"]
    ws = Workspace(plan.shared["workspace"])
    result = build_manifest(config.model_copy(update={"out_dir": str(local_path(plan.ref.uri))}),
                            on_progress=stage_progress(NAME))
    content_hash = _relative_manifest_paths(ws, plan.ref.path(MANIFEST))
    write_text(plan.ref.path(DATASET), json.dumps(DatasetFiles.from_config(config, ws).to_json(), indent=1))
    counts = {"videos": result.num_videos, "keyframes": result.num_keyframes, "rejects": result.num_rejects}
    # The manifest's content hash joins the identity that downstream stages see.
    return Finished(counts, inputs={"manifest": content_hash})


def _relative_manifest_paths(ws: Workspace, uri: str) -> str:
    """Rewrite the manifest's video paths workspace-relative where they lie inside it; returns the
    content hash of the result (the same wherever the workspace is)."""
    path = local_path(uri)
    table = read_manifest(path)
    column = pa.array([ws.relative(p) for p in table.column("path").to_pylist()], pa.string())
    table = table.set_column(table.schema.get_field_index("path"), "path", column)
    content_hash = table_hash(table)
    meta = {**(table.schema.metadata or {}), b"stad.content_hash": content_hash.encode()}
    write_parquet(table.replace_schema_metadata(meta), path)
    return content_hash


@dataclass(frozen=True)
class DatasetFiles:
    """The annotation files an ingest output was built from (resolved in the reading workspace)."""

    splits: dict[str, str]  # split -> ground-truth CSV
    exclusions: tuple[str, ...]
    labelmap: str | None
    time_offset: float

    @classmethod
    def from_config(cls, config: IngestConfig, ws: Workspace) -> DatasetFiles:
        return cls(
            splits={k: ws.relative(v) for k, v in config.annotation_files().items()},
            exclusions=tuple(ws.relative(p) for p in config.exclusions),
            labelmap=ws.relative(config.labelmap) if config.labelmap else None,
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


def dataset_of(ref: StageRef) -> DatasetFiles:
    """The annotation files recorded by an ingest output, resolved inside the output's workspace."""
    uri = join(ref.uri, DATASET)
    try:
        data = json.loads(read_text(uri))
    except FileNotFoundError:
        raise StadError(f"{ref.uri} has no {DATASET} (written by an older stad): "
                        "re-run `stad run ingest --force`") from None
    ws = workspace_of(ref)
    return DatasetFiles({k: ws.uri(v) for k, v in data["splits"].items()},
                        tuple(ws.uri(p) for p in data["exclusions"]),
                        ws.uri(data["labelmap"]) if data["labelmap"] else None, float(data["time_offset"]))


def workspace_of(ref: StageRef) -> Workspace:
    """The workspace a resolved ref lives in (its uri minus ``<stage>/<folder>``)."""
    return Workspace(ref.uri[: -len(ref.path_in_workspace)].rstrip("/") or "/")


@lru_cache(maxsize=8)
def _entries(path: str, mtime_ns: int, root: str) -> tuple[ManifestEntry, ...]:
    ws = Workspace(root)
    return tuple(replace(e, path=ws.uri(e.path), info=replace(e.info, path=ws.uri(e.path)))
                 for e in manifest_entries(read_manifest(path)))


def videos_of(ref: StageRef, splits: Sequence[str] | None = None) -> list[ManifestEntry]:
    """The manifest's videos (optionally of some splits), sorted by id, paths resolved; read once per process."""
    path = local_path(ref.path(MANIFEST))
    entries = _entries(str(path), path.stat().st_mtime_ns, workspace_of(ref).root)  # a forced ingest rewrites it
    return sorted((e for e in entries if splits is None or e.split in splits), key=lambda e: e.video_id)


STAGE = Stage(NAME, IngestConfig, "videos + AVA CSVs -> manifest.parquet + rejects.parquet", upstream=(), gpu=False,
              prepare=prepare, resolve=resolve, finish=finish, default_config="configs/ingest.yaml")
