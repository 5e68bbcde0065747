"""Model bundles: everything ``stad infer`` needs to run a trained head on a new video, in one folder.

``export_bundle(workspace, out)`` copies from a workspace's trained model (a train or acfb output):

```
<bundle>/bundle.json     the manifest: format, code version, config hash, the pieces and their sha256
<bundle>/detector.pt     person detector weights (absent when the detector reads the torch cache)
<bundle>/backbone.pt     the video backbone (+ backbone.json: architecture, knobs, out_channels, sha256)
<bundle>/head.pt         the head checkpoint (train or acfb output)
<bundle>/acar.pt         ACFB only: the ACAR head whose actor-context features ACFB reads
<bundle>/labelmap.pbtxt  the label map the head was trained with
```

The manifest also holds the extract settings (clip sampling, RoI pooling: the backbone's
preprocessing), the bank specs and the detector settings. ``load_bundle`` refuses a bundle whose
pieces disagree: a file whose bytes changed, a backbone the bank specs or the head do not fit, a head
trained for another label map, an ACFB head without its ACAR head, or a manifest edited by hand
(its ``config_hash`` covers every setting).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stad_core.atomic import atomic_write_text
from stad_core.banks import BankSpec
from stad_core.detection import DetectConfig
from stad_core.errors import StadError
from stad_core.extract import ExtractConfig
from stad_core.stage_configs import DetectStageConfig
from storage.exports import BACKBONE, BACKBONE_INFO, backbone_info, sha256_file
from storage.uri import local_path
from storage.workspace import CONFIG_FILE, StageRef, Workspace, code_version, digest

FORMAT = "stad-model-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
HEAD = "head.pt"
ACAR = "acar.pt"
DETECTOR = "detector.pt"
LABELMAP = "labelmap.pbtxt"


class BundleError(StadError):
    """A bundle that cannot be used as is (missing piece, pieces that disagree)."""


@dataclass(frozen=True)
class Bundle:
    """A checked bundle folder and its manifest."""

    root: Path
    manifest: dict[str, Any]

    @property
    def config_hash(self) -> str:
        return str(self.manifest["config_hash"])

    @property
    def extract(self) -> ExtractConfig:
        return ExtractConfig.model_validate(self.manifest["extract"])

    @property
    def detector(self) -> DetectConfig:
        """The detector settings, weights pointing into the bundle (or ``cache``)."""
        values = dict(self.manifest["detector"]["config"])
        if self.manifest["detector"].get("file"):
            values["weights"] = str(self.root / self.manifest["detector"]["file"])
        return DetectConfig.model_validate(values)

    @property
    def bank_specs(self) -> dict[str, BankSpec]:
        return {kind: BankSpec.model_validate(v) for kind, v in self.manifest["banks"].items()}

    @property
    def head_path(self) -> Path:
        return self.root / HEAD

    @property
    def acar_path(self) -> Path | None:
        return self.root / ACAR if self.manifest.get("acar") else None

    @property
    def labelmap_path(self) -> Path:
        return self.root / LABELMAP

    @property
    def head_name(self) -> str:
        return str(self.manifest["head"]["label"])


def _settings_hash(manifest: dict[str, Any]) -> str:
    """Digest of every setting and piece hash of a manifest (everything but the hash itself)."""
    return digest(json.dumps({k: v for k, v in manifest.items() if k not in ("config_hash", "created_at")},
                             sort_keys=True))


def _model_refs(ws: Workspace, model: str | None) -> StageRef:
    from storage.stages.evaluate import MODEL_STAGES, latest_model

    if model is None:
        return latest_model(ws)
    for stage in MODEL_STAGES:
        for ref in ws.history(stage):
            if model in (ref.key, ref.path_in_workspace, f"{ref.config_hash}-{ref.key}"):
                return ref
    raise StadError(f"no train or acfb output {model!r} in {ws.root}: `stad history -w {ws.root}` lists them")


def _detector_of(ws: Workspace, extract: StageRef, finetune: StageRef,
                 override: DetectConfig | None) -> tuple[DetectConfig, Path | None, str]:
    """The detector new videos get: ``override``, else the detect stage's detector, else the one the
    finetune stage trained. Returns (settings, weights file to copy or None, where it came from)."""
    detect = ws.find("detect", extract.upstream["detect"])
    stored = _stored_config(detect, DetectStageConfig)
    if override is not None:
        config, source = override, "given"
    elif stored is not None and stored.source == "detector":
        config, source = stored.detector, f"detect stage {detect.path_in_workspace}"
    elif local_path(finetune.path(DETECTOR)).is_file():
        config = DetectConfig(detector="tiny_fasterrcnn", weights=str(local_path(finetune.path(DETECTOR))),
                              num_classes=2, score_threshold=0.5)
        source = f"finetune stage {finetune.path_in_workspace}"
    else:
        said = f"from {stored.source!r}" if stored is not None else "from a source this workspace does not record"
        raise StadError(
            f"the model's boxes came {said} (detect stage {detect.path_in_workspace}); new videos need a person "
            "detector: pass --detector NAME [--detector-weights PATH], or fine-tune one with finetune's `detector:`")
    weights = None
    if config.weights not in (None, "cache"):
        weights = Path(config.weights)
        if not weights.is_file():
            raise StadError(f"detector weights {weights} not found (from the {source})")
    elif config.weights is None:
        raise StadError(f"the {source} detector has random weights (weights: null): a bundle needs trained ones")
    return config, weights, source


def _stored_config(ref: StageRef, model: type[Any]) -> Any | None:
    """The effective config a stage output recorded beside its record, if it did."""
    path = local_path(ref.path(CONFIG_FILE))
    if path.is_file():
        return model.model_validate(json.loads(path.read_text()))
    return None


def _extract_config(extract: StageRef, specs: dict[str, BankSpec]) -> ExtractConfig:
    """The extract output's settings: its stored config, else the one the bank specs describe whose
    hash equals the output's recorded config hash (the settings the specs leave out are searched
    over common values; only ``short_side`` changes features)."""
    import itertools
    import re

    stored = _stored_config(extract, ExtractConfig)
    if stored is not None:
        return stored
    spec = specs["long_term"]
    match = re.fullmatch(r"roi_align(\d+)(_aligned)?_(tavg|tmax)_smax(_ctx)?(_geo)?(_rgb)?", spec.roi_recipe)
    if match is None:
        raise StadError(f"{extract.uri}: unknown RoI recipe {spec.roi_recipe!r}; re-run extract with this stad")
    grid = specs["context"].context_grid[0] if "context" in specs and specs["context"].context_grid else None
    base: dict[str, Any] = dict(num_frames=spec.clip_num_frames, stride=spec.clip_stride,
                                roi_output_size=int(match.group(1)), roi_aligned=bool(match.group(2)),
                                context_grid=grid, dtype=spec.dtype)
    if "roi_temporal_pool" in ExtractConfig.model_fields:  # the RoI tricks, where this stad has them
        base.update(roi_temporal_pool="max" if match.group(3) == "tmax" else "mean", roi_context=bool(match.group(4)))
    if "roi_geometry" in ExtractConfig.model_fields:
        base.update(roi_geometry=bool(match.group(5)), roi_appearance=bool(match.group(6)))
    for short, batch, workers, amp, skip in itertools.product(
            (None, 256, 128, 160, 192, 224, 288, 320, 112, 96, 64), (8, 16, 4, 32, 1, 2, 64),
            (2, 0, 1, 4, 8), (True, False), (True, False)):
        config = ExtractConfig(**base, short_side=short, batch_size=batch, num_workers=workers, amp=amp,
                               skip_empty=skip)
        if config.config_hash() == extract.config_hash:
            return config
    raise StadError(f"{extract.uri}: cannot tell its extract settings (no config.json beside its record, and no "
                    "common setting matches its config hash: written by another stad version?); re-run the "
                    "pipeline (or `stad run extract` and the heads) with this stad, then export again")


def export_bundle(workspace: str | Path, out: str | Path, *, model: str | None = None,
                  detector: DetectConfig | None = None) -> Bundle:
    """Write a bundle folder ``out`` from ``workspace``'s model (default: its newest train/acfb output).

    Refuses to overwrite a non-empty folder that is not a bundle. Returns the checked bundle.
    """
    from storage.stages.acfb import ACTOR_CONTEXT
    from storage.stages.extract import CONTEXT, LONG_TERM
    from storage.stages.ingest import dataset_of
    from storage.stages.train import CHECKPOINT
    from stad_core.train import load_trained_head

    ws = Workspace(workspace)
    ref = _model_refs(ws, model)
    extract = ws.find("extract", ref.upstream["extract"])
    ingest = ws.find("ingest", ref.upstream["ingest"])
    finetune = ws.find("finetune", extract.upstream["finetune"])
    det_config, det_weights, det_source = _detector_of(ws, extract, finetune, detector)

    from storage import open_reader

    banks = {"long_term": open_reader(extract.path(LONG_TERM)).spec}
    if local_path(extract.path(CONTEXT)).exists():
        banks["context"] = open_reader(extract.path(CONTEXT)).spec
    acar_ref = None
    if ref.stage == "acfb":
        acar_ref = ws.find("train", ref.upstream["train"])
        banks["actor_context"] = open_reader(ref.path(ACTOR_CONTEXT)).spec
    extract_config = _extract_config(extract, banks)
    trained = load_trained_head(local_path(ref.path(CHECKPOINT)))

    dest = Path(out).expanduser().resolve()
    if dest.exists() and any(dest.iterdir()) and not (dest / MANIFEST).is_file():
        raise StadError(f"{dest} exists and is not a bundle: choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)  # the manifest is written last: a half-copied bundle is not one
    shutil.copyfile(local_path(ref.path(CHECKPOINT)), dest / HEAD)
    for name in (BACKBONE, BACKBONE_INFO):
        shutil.copyfile(local_path(finetune.path(name)), dest / name)
    shutil.copyfile(dataset_of(ingest).require_labelmap("export"), dest / LABELMAP)
    if acar_ref is not None:
        shutil.copyfile(local_path(acar_ref.path(CHECKPOINT)), dest / ACAR)
    else:
        (dest / ACAR).unlink(missing_ok=True)
    detector_entry: dict[str, Any] = {"config": det_config.model_dump(mode="json"), "source": det_source,
                                      "file": None, "sha256": None}
    if det_weights is not None:
        shutil.copyfile(det_weights, dest / DETECTOR)
        detector_entry.update(file=DETECTOR, sha256=sha256_file(dest / DETECTOR))
        detector_entry["config"]["weights"] = DETECTOR
    else:
        (dest / DETECTOR).unlink(missing_ok=True)
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "code_version": code_version(),
        "created_at": time.time(),
        "source": {"workspace": ws.root, "model": ref.path_in_workspace, "extract": extract.path_in_workspace,
                   "finetune": finetune.path_in_workspace, "ingest": ingest.path_in_workspace},
        "head": {"file": HEAD, "sha256": sha256_file(dest / HEAD), "stage": ref.stage, "head": trained.config.head,
                 "label": _label(trained.config), "epoch": trained.epoch,
                 "config_hash": trained.config.config_hash()},
        "acar": {"file": ACAR, "sha256": sha256_file(dest / ACAR)} if acar_ref is not None else None,
        "backbone": {**backbone_info(finetune.uri), "file": BACKBONE},
        "extract": extract_config.model_dump(mode="json"),
        "banks": {kind: spec.model_dump(mode="json") for kind, spec in banks.items()},
        "labelmap": {"file": LABELMAP, "sha256": sha256_file(dest / LABELMAP)},
        "detector": detector_entry,
    }
    manifest["config_hash"] = _settings_hash(manifest)
    atomic_write_text(dest / MANIFEST, json.dumps(manifest, indent=1))
    return load_bundle(dest)


def _label(config: Any) -> str:
    from stad_core.heads.variants import variant_name

    return variant_name(config.head, config.fbo)


def _row_width(extract: ExtractConfig, manifest: dict[str, Any], kind: str) -> int:
    """Feature width of a bank of ``kind`` built by these settings from the bundle's backbone."""
    channels = int(manifest["backbone"]["out_channels"])
    if kind == "long_term" and hasattr(extract, "feature_dim"):
        return int(extract.feature_dim(channels))  # RoI 'with context' doubles the rows
    return channels


def load_bundle(path: str | Path) -> Bundle:
    """Open and check a bundle folder (every check listed in the module docstring)."""
    from stad_core.ava import read_labelmap
    from stad_core.train import load_trained_head

    root = Path(path).expanduser().resolve()
    if root.is_file() and root.name == MANIFEST:
        root = root.parent
    if not (root / MANIFEST).is_file():
        raise BundleError(f"{root} is not a model bundle (no {MANIFEST}): create one with `stad export`")
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except ValueError as exc:
        raise BundleError(f"{root / MANIFEST}: not JSON ({exc})") from None
    if manifest.get("format") != FORMAT or int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise BundleError(f"{root}: bundle format {manifest.get('format')} v{manifest.get('format_version')} "
                          f"is not readable by this stad (reads {FORMAT} v{FORMAT_VERSION})")
    problems: list[str] = []
    if manifest.get("config_hash") != _settings_hash(manifest):
        problems.append(f"{MANIFEST} was edited after export (its config_hash no longer matches its settings)")
    files = {"head": manifest["head"], "labelmap": manifest["labelmap"], "backbone": manifest["backbone"]}
    if manifest.get("acar"):
        files["acar"] = manifest["acar"]
    if manifest["detector"].get("file"):
        files["detector"] = manifest["detector"]
    for piece, entry in files.items():
        file = root / entry["file"]
        if not file.is_file():
            problems.append(f"{piece}: {entry['file']} is missing")
        elif sha256_file(file) != entry["sha256"]:
            problems.append(f"{piece}: {entry['file']} changed since export (sha256 differs)")
    if problems:
        raise BundleError(f"bundle {root} refused: " + "; ".join(problems))
    bundle = Bundle(root, manifest)
    info = json.loads((root / BACKBONE_INFO).read_text())
    if info.get("sha256") != manifest["backbone"]["sha256"]:
        problems.append("backbone.json describes other weights than backbone.pt")
    specs = bundle.bank_specs
    for kind in ("long_term", "context"):
        spec = specs.get(kind)
        if spec is not None and (spec.checkpoint_sha256 != manifest["backbone"]["sha256"]
                                 or spec.feature_dim != _row_width(bundle.extract, manifest, kind)):
            problems.append(f"the {kind} bank spec was built from another backbone than the bundle's")
        if spec is not None and spec.dtype != bundle.extract.dtype:
            problems.append(f"the {kind} bank spec's dtype {spec.dtype} differs from the extract settings'")
    trained = load_trained_head(bundle.head_path)
    if trained.config.config_hash() != manifest["head"]["config_hash"]:
        problems.append("head.pt holds another head than the manifest names")
    if trained.config.actor_dim != _row_width(bundle.extract, manifest, "long_term"):
        problems.append(f"the head reads {trained.config.actor_dim}-d actor features; the backbone and RoI "
                        f"settings give {_row_width(bundle.extract, manifest, 'long_term')}")
    if trained.config.context_dim is not None and "context" in specs and trained.config.context_dim != specs["context"].feature_dim:
        problems.append("the head's context width differs from the context bank spec's")
    labels = read_labelmap(bundle.labelmap_path)
    if tuple(trained.classes.action_ids) != tuple(a for a in trained.classes.action_ids if a in set(labels.ids)):
        problems.append("the head's classes are not in the bundle's label map")
    if trained.config.head == "acfb":
        if bundle.acar_path is None:
            problems.append("an ACFB head needs its ACAR head (acar.pt), which the bundle lacks")
        else:
            acar = load_trained_head(bundle.acar_path)
            if acar.config.head != "acar":
                problems.append(f"acar.pt holds a {acar.config.head!r} head, not an ACAR head")
            elif "actor_context" in specs and specs["actor_context"].checkpoint_sha256 != manifest["acar"]["sha256"]:
                problems.append("the actor-context bank spec was built from another ACAR head than acar.pt")
            elif trained.config.actor_context_dim != acar.config.latent_dim:
                problems.append("the ACFB head's actor-context width differs from the ACAR head's latent size")
    if problems:
        raise BundleError(f"bundle {root} refused: " + "; ".join(problems))
    return bundle
