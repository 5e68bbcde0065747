"""The workspace: where every stage output lives, and what identifies it.

One workspace root (a local path or any fsspec URI, e.g. ``s3://team/stad``) holds every stage's
outputs, one folder per *identity*::

    <root>/<stage>/<config_hash>-<key>/              outputs of one run of a stage
    <root>/<stage>/<config_hash>-<key>/_stage.json   its StageRef, written LAST (= stage complete)
    <root>/<stage>/LATEST                            key folder of the newest complete output

``key`` digests the stage name, its config hash, the keys of its upstream outputs, any input
fingerprints and the code version. A downstream stage's folder name therefore changes as soon as
anything upstream changes: it never silently reuses outputs computed from stale inputs.

Records are **relative to their workspace**: ``_stage.json`` stores the output's folder relative to
the root, and paths that stages record (manifest video paths, annotation files of a synthetic
dataset, history rows) are workspace-relative when they point inside it. A copied or moved
workspace therefore reads only its own files; a record that points outside its workspace is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import fsspec

from stad_core.atomic import atomic_write_text
from stad_core.config import StageConfig
from stad_core.errors import StadError
from storage.uri import fs_for, is_local, join, local_path

STAGE_REF_FILE = "_stage.json"
CONFIG_FILE = "config.json"  # the effective config of a committed output (beside its record)
LATEST_FILE = "LATEST"
# Packages whose source decides what a stage writes; flows/ only wires, so it is not part of it.
_VERSIONED_PACKAGES = ("stad_core", "storage")


def digest(*parts: Any) -> str:
    """16-hex-digit sha256 of canonical JSON of ``parts`` (stable across processes and machines)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_version() -> str:
    """Version of the code that produces stage outputs; part of every output's identity.

    Default: the package version — bump it when a change alters what a stage writes. Expensive
    outputs (feature banks) should not be invalidated by an unrelated edit, so a source hash is
    opt-in. ``STAD_CODE_VERSION`` selects:

    * ``source`` — ``<version>+<hash of every .py file of stad_core and storage>``;
    * ``git``    — ``<version>+<git describe --always --dirty>`` of the checkout (falls back to the version);
    * any other value — used verbatim (e.g. a release tag pinned in a team deployment).
    """
    from stad_core import __version__

    mode = os.environ.get("STAD_CODE_VERSION", "").strip()
    if not mode:
        return __version__
    if mode == "source":
        return f"{__version__}+{_source_hash()}"
    if mode == "git":
        described = _git_describe()
        return f"{__version__}+{described}" if described else __version__
    return mode


@lru_cache(maxsize=1)
def _source_hash() -> str:
    sha = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for package in _VERSIONED_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            sha.update(str(path.relative_to(root)).encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()[:8]


@lru_cache(maxsize=1)
def _git_describe() -> str | None:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass(frozen=True)
class StageRef:
    """What a stage returns: where its outputs are and the identity they were built from.

    Small and JSON-serialisable (it travels through Prefect as a flow result and a parameter);
    the data itself stays in the workspace. ``path`` is the output folder relative to the
    workspace root (what ``_stage.json`` stores); ``uri`` is that folder resolved against the
    workspace the ref was read from, so a copied workspace resolves to its own files.
    """

    stage: str
    uri: str
    config_hash: str
    key: str
    code_version: str
    upstream: dict[str, str] = field(default_factory=dict)  # upstream stage -> its StageRef.key
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> fingerprint
    counts: dict[str, int] = field(default_factory=dict)
    reused: bool = False  # True when an existing complete output was returned without running

    @property
    def path_in_workspace(self) -> str:
        """``<stage>/<config_hash>-<key>``: where this output lives under any workspace root."""
        return f"{self.stage}/{self.config_hash}-{self.key}"

    def to_json(self) -> str:
        """The record stored in ``_stage.json``: everything but the resolved ``uri`` and ``reused``."""
        data = {k: v for k, v in asdict(self).items() if k not in ("uri", "reused")}
        data["path"] = self.path_in_workspace
        return json.dumps(data, sort_keys=True, indent=1)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], uri: str) -> StageRef:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in ("uri", "reused")}
        return cls(uri=uri, **known)

    def path(self, *parts: str) -> str:
        """URI of a file inside this stage's output folder."""
        return join(self.uri, *parts)


def stage_key(
    stage: str,
    config_hash: str,
    upstream: Iterable[StageRef] = (),
    inputs: Mapping[str, str] | None = None,
    version: str | None = None,
) -> str:
    """Identity of a stage output (see module docstring)."""
    ups = sorted((u.stage, u.key) for u in upstream)
    return digest(stage, config_hash, ups, dict(sorted((inputs or {}).items())), version or code_version())


def fingerprint_paths(paths: Iterable[str | os.PathLike[str] | None]) -> str:
    """Cheap content identity of input files or folders: (path, size, mtime) of every file.

    Used for raw inputs that no stage produced (videos, annotation CSVs); hashing terabytes of
    video to notice an edit would cost more than the stage itself. ``None`` entries are skipped.
    """
    entries: list[tuple[str, int, str]] = []
    for item in paths:
        if item is None:
            continue
        fs, path = fs_for(str(item))
        if not fs.exists(path):
            entries.append((str(item), -1, "missing"))
            continue
        files = fs.find(path, detail=True) if fs.isdir(path) else {path: fs.info(path)}
        for name, info in sorted(files.items()):
            # mtime is a float locally and a datetime/str on object stores: str() keeps it canonical.
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
            entries.append((str(item) + name[len(path):], int(info.get("size") or 0), str(mtime)))
    return digest(entries)


class Workspace:
    """A workspace root plus the stage-output conventions."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        root = str(root)
        # Local paths become absolute so refs stay valid from any working directory or worker.
        self.root = root if "://" in root else str(Path(root).expanduser().resolve())
        self.fs, self._root_path = fs_for(self.root)

    def __repr__(self) -> str:
        return f"Workspace({self.root!r})"

    # -- paths inside the workspace ------------------------------------------------------------

    def uri(self, relative: str) -> str:
        """The URI of a workspace-relative path (absolute paths and URLs are returned unchanged)."""
        if "://" in relative or os.path.isabs(relative):
            return relative
        return join(self.root, relative)

    def relative(self, uri: str | os.PathLike[str]) -> str:
        """``uri`` relative to the root when it lies inside the workspace, else ``uri`` unchanged
        (absolute): how stages record paths so a copied workspace resolves to its own files."""
        uri = str(uri)
        if "://" not in uri and not os.path.isabs(uri):
            uri = os.path.abspath(uri)
        prefix = self.root.rstrip("/") + "/"
        return uri[len(prefix):] if uri.startswith(prefix) else uri

    def stage_uri(self, stage: str, config_hash: str, key: str) -> str:
        return join(self.root, stage, f"{config_hash}-{key}")

    # -- identity and completion ---------------------------------------------------------------

    def plan(
        self,
        stage: str,
        config: StageConfig,
        upstream: Iterable[StageRef] = (),
        inputs: Mapping[str, str] | None = None,
    ) -> StageRef:
        """The StageRef a run of ``stage`` with these inputs will produce (counts still empty)."""
        ups = list(upstream)
        chash = config.config_hash()
        version = code_version()
        key = stage_key(stage, chash, ups, inputs, version)
        return StageRef(
            stage=stage,
            uri=self.stage_uri(stage, chash, key),
            config_hash=chash,
            key=key,
            code_version=version,
            upstream={u.stage: u.key for u in ups},
            inputs=dict(inputs or {}),
        )

    def load_complete(self, planned: StageRef) -> StageRef | None:
        """The stored StageRef if ``planned``'s output folder is complete, else None."""
        return self.read_ref(planned.path_in_workspace)

    def begin(self, planned: StageRef, *, force: bool = False) -> None:
        """Prepare ``planned``'s folder for writing. ``force`` first un-marks it as complete, so a
        crash during a forced re-run can never leave half-rewritten outputs that look complete."""
        fs, path = fs_for(planned.path(STAGE_REF_FILE))
        if force and fs.exists(path):
            fs.rm(path)
        fs.makedirs(fs_for(planned.uri)[1], exist_ok=True)

    def commit(self, ref: StageRef) -> StageRef:
        """Mark a stage output complete: write its StageRef last, then point LATEST at it."""
        write_text(ref.path(STAGE_REF_FILE), ref.to_json())
        write_text(join(self.root, ref.stage, LATEST_FILE), posixpath.basename(ref.uri) + "\n")
        return ref

    def read_ref(self, relative: str) -> StageRef | None:
        """The StageRef stored in the output folder ``relative`` (``<stage>/<hash>-<key>``), or None
        if that folder is not complete. The ref's ``uri`` resolves inside this workspace."""
        uri = join(self.root, relative)
        fs, path = fs_for(join(uri, STAGE_REF_FILE))
        if not fs.exists(path):
            return None
        try:
            data = json.loads(read_text(join(uri, STAGE_REF_FILE)))
            ref = StageRef.from_mapping(data, uri)
        except (ValueError, TypeError) as exc:
            raise StadError(f"{uri}: corrupt {STAGE_REF_FILE} ({exc}); delete the folder to rebuild it") from None
        if ref.path_in_workspace != relative.strip("/"):
            raise StadError(f"{uri}/{STAGE_REF_FILE} is the record of {ref.path_in_workspace!r}, not of this folder: "
                            "it was copied in from elsewhere; delete the folder to rebuild it")
        return ref

    def latest(self, stage: str) -> StageRef | None:
        """The newest complete output of ``stage`` in this workspace (None when there is none)."""
        pointer = join(self.root, stage, LATEST_FILE)
        fs, path = fs_for(pointer)
        if not fs.exists(path):
            return None
        return self.read_ref(f"{stage}/{read_text(pointer).strip()}")

    def require_latest(self, stage: str, needed_by: str) -> StageRef:
        ref = self.latest(stage)
        if ref is None:
            raise StadError(
                f"{needed_by} needs a complete '{stage}' output in {self.root}: "
                f"run `stad run {stage}` first (or the whole `stad run pipeline`)"
            )
        return ref

    def find(self, stage: str, key: str) -> StageRef:
        """The complete output of ``stage`` whose key is ``key``."""
        for ref in self.history(stage):
            if ref.key == key:
                return ref
        raise StadError(f"no complete {stage} output with key {key} in {self.root}")

    def history(self, stage: str | None = None) -> list[StageRef]:
        """Every complete stage output (newest first by completion time)."""
        stages = [stage] if stage else sorted(self._list_dirs(self.root))
        found: list[tuple[float, StageRef]] = []
        for name in stages:
            for folder in self._list_dirs(join(self.root, name)):
                ref = self.read_ref(f"{name}/{folder}")
                if ref is not None:
                    fs, path = fs_for(ref.path(STAGE_REF_FILE))
                    found.append((_modified(fs.info(path)), ref))
        found.sort(key=lambda item: item[0], reverse=True)
        return [ref for _, ref in found]

    def _list_dirs(self, uri: str) -> list[str]:
        fs, path = fs_for(uri)
        if not fs.exists(path):
            return []
        return [posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False) if fs.isdir(p)]


def _modified(info: Mapping[str, Any]) -> float:
    """Modification time (epoch seconds) from an fsspec info dict, whatever the backend calls it."""
    value = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def read_text(uri: str) -> str:
    with fsspec.open(uri, "r") as fh:
        return fh.read()


def write_text(uri: str, text: str) -> None:
    """Write ``text`` so readers never see a partial file (atomic rename locally; object stores
    write whole objects)."""
    if is_local(uri):
        atomic_write_text(local_path(uri), text)
        return
    fs, path = fs_for(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "w") as fh:
        fh.write(text)
