"""infer: a model bundle applied to videos nobody annotated (``stad infer``).

Per video: probe -> detect persons on every keyframe (a whole second every ``stride`` seconds) ->
track ids (``stad_core.tracking.assign_tracks``) -> extract actor rows (+ context maps) into a bank
of its own (temporary unless ``keep_bank``; track ids in the person column) -> for ACFB, the ACAR
head's actor-context rows -> the head over the bank, with long-term windows and actor context from
the same video -> ``<out>/<video>.csv``, ``<video>.tracks.json``, ``<video>.mp4``
(``stad_core.infer`` writes them).

Memory stays bounded on long videos: detection decodes a batch of keyframes at a time, extraction
streams clips, the head runs in batches, the annotated MP4 is decoded, drawn and encoded one frame
at a time. A folder run is resumable: a video whose ``<video>.done.json`` names the same bundle and
settings is skipped; a video that fails (unreadable file) is reported and the rest go on.

This is not a registered workspace stage (its inputs are a bundle and loose files, not upstream
outputs), but it follows the same split: plain functions here, a thin flow in ``flows/infer.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from stad_core.atomic import atomic_write_text
from stad_core.config import StageConfig
from stad_core.errors import StadError
from stad_core.infer import (
    ScoredActors,
    annotated_frames,
    even_size,
    keyframe_seconds,
    overlays,
    tracks_document,
    write_csv,
    write_json,
)
from storage.bundle import Bundle, load_bundle

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")
DONE_SUFFIX = ".done.json"


class InferConfig(StageConfig):
    """Settings of ``stad infer`` (besides the bundle and the videos)."""

    stride: int = Field(1, ge=1, description="seconds between keyframes (detection and scoring)")
    margin: int = Field(1, ge=0, description="no keyframes in the first/last this many seconds")
    threshold: float = Field(0.3, ge=0.0, le=1.0, description="actions shown in the MP4 and JSON score >= this")
    top_k: int = Field(3, ge=1, description="at most this many actions per box in the MP4 and JSON")
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="CSV rows: (actor, class) scores >= this")
    iou_threshold: float = Field(0.3, gt=0.0, le=1.0, description="tracker: least IoU to continue a track")
    max_gap: int = Field(2, ge=1, description="tracker: keyframes a track may miss and continue")
    keep_bank: bool = Field(False, description="keep each video's feature bank in <out>/banks/<video>/")
    video: bool = Field(True, description="write the annotated MP4")
    batch_size: int = Field(16, ge=1, description="actors per head forward")


@dataclass
class InferResult:
    """One video's outputs (paths) and counts; ``skipped`` when a previous run had finished it."""

    video_id: str
    csv: Path
    tracks: Path
    mp4: Path | None
    keyframes: int = 0
    actors: int = 0
    tracks_count: int = 0
    skipped: bool = False
    bank: Path | None = None


@dataclass
class InferFailure:
    path: Path
    reason: str


@dataclass
class FolderResult:
    done: list[InferResult] = field(default_factory=list)
    failed: list[InferFailure] = field(default_factory=list)


def video_id_for(path: Path) -> str:
    """A bank-safe id from the file name (letters, digits, ``-_.`` kept, the rest ``_``)."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem).strip(".") or "video"
    return stem


def find_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Video files named or found (not recursively) in the named folders, sorted, without duplicates."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
        else:
            found.append(path)
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]  # type: ignore[func-returns-value]


class Models:
    """The bundle's models, loaded once per run (on ``device``)."""

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = device

    @cached_property
    def detector(self) -> Any:
        from stad_core.detection import PersonDetector

        return PersonDetector.from_config(self.bundle.detector, device=self.device)

    @cached_property
    def backbone(self) -> Any:
        from storage.exports import load_backbone

        return load_backbone(str(self.bundle.root))[0]

    @cached_property
    def head(self) -> Any:
        from stad_core.train import load_trained_head

        return load_trained_head(self.bundle.head_path, device=self.device)

    @cached_property
    def acar(self) -> Any:
        from stad_core.train import load_trained_head

        path = self.bundle.acar_path
        return None if path is None else load_trained_head(path, device=self.device).head

    @cached_property
    def names(self) -> dict[int, str]:
        from stad_core.ava import read_labelmap

        return dict(read_labelmap(self.bundle.labelmap_path).names)


def _settings_key(bundle: Bundle, config: InferConfig) -> str:
    return f"{bundle.config_hash}:{config.config_hash()}"


def _outputs(out: Path, video_id: str) -> tuple[Path, Path, Path, Path]:
    return (out / f"{video_id}.csv", out / f"{video_id}.tracks.json", out / f"{video_id}.mp4",
            out / f"{video_id}{DONE_SUFFIX}")


def infer_video(models: Models, path: str | Path, out: str | Path, config: InferConfig = InferConfig(), *,
                video_id: str | None = None, force: bool = False,
                on_progress: Callable[[str, int, int], None] | None = None) -> InferResult:
    """Run the bundle on one video; writes the CSV, the tracks JSON and (``config.video``) the MP4.

    Raises ``VideoError`` (a ``StadError``) for a missing or unreadable video, naming the file.
    """
    from stad_core.video import probe

    path = Path(path)
    out = Path(out)
    vid = video_id or video_id_for(path)
    csv_path, json_path, mp4_path, done = _outputs(out, vid)
    key = _settings_key(models.bundle, config)
    if not force and done.is_file():
        try:
            if json.loads(done.read_text()).get("settings") == key:
                return InferResult(vid, csv_path, json_path, mp4_path if config.video else None, skipped=True)
        except ValueError:
            pass
    done.unlink(missing_ok=True)
    info = probe(path)
    out.mkdir(parents=True, exist_ok=True)

    def progress(step: str) -> Callable[[int, int], None] | None:
        return None if on_progress is None else (lambda n, total: on_progress(step, n, total))

    stamps = keyframe_seconds(info.duration, stride=config.stride, margin=config.margin)
    detections = models.detector.detect_keyframes(path, vid, stamps, batch_size=models.bundle.detector.batch_size,
                                                  short_side=models.bundle.detector.short_side,
                                                  on_progress=progress("detect"))
    from stad_core.tracking import assign_tracks

    # A missed keyframe is `stride` seconds: the tracker's gap counts keyframes.
    ids = assign_tracks([d.boxes for d in detections], [d.scores for d in detections],
                        iou_threshold=config.iou_threshold, max_gap=config.max_gap)
    # Beside the outputs (same disk, not a small /tmp); a leftover of an unfinished run is rebuilt whole.
    bank_dir = out / "banks" / vid if config.keep_bank else out / f".bank-{vid}.tmp"
    try:
        if bank_dir.exists():
            shutil.rmtree(bank_dir)
        actors = _score(models, path, vid, detections, ids, bank_dir, config, progress)
    finally:
        if not config.keep_bank:
            shutil.rmtree(bank_dir, ignore_errors=True)
    names = models.names
    write_csv(csv_path, actors, min_score=config.min_score)
    video_info = {"path": str(path), "width": info.width, "height": info.height, "fps": info.fps,
                  "frames": info.num_frames, "duration": info.duration,
                  "keyframes": stamps, "model": models.bundle.head_name, "bundle": models.bundle.config_hash}
    document = tracks_document(actors, names, video=video_info, threshold=config.threshold, top_k=config.top_k)
    write_json(json_path, document)
    if config.video:
        _annotate(path, mp4_path, actors, names, info, config, progress("video"))
    atomic_write_text(done, json.dumps({"settings": key, "video": str(path)}))
    return InferResult(vid, csv_path, json_path, mp4_path if config.video else None, keyframes=len(stamps),
                       actors=len(actors), tracks_count=len(document["tracks"]),
                       bank=bank_dir if config.keep_bank else None)


def _score(models: Models, path: Path, vid: str, detections: Sequence[Any], ids: Sequence[np.ndarray],
           bank_dir: Path, config: InferConfig, progress: Callable[[str], Any]) -> ScoredActors:
    """Extract the video's bank, add actor context for ACFB, run the head; rows carry track ids."""
    from stad_core.extract import VideoJob, extract_features
    from stad_core.train import BankSet, infer_actor_context, predict
    from storage import open_bank

    bundle = models.bundle
    specs = bundle.bank_specs
    source = f"detector:{bundle.detector.detector}"
    banks = {kind: open_bank(str(bank_dir / f"{kind}.zarr"), "a", spec.model_copy(update={"detector_source": source}))
             for kind, spec in specs.items() if kind in ("long_term", "context")}
    job = VideoJob(vid, str(path), list(detections),
                   person_ids={int(d.key.timestamp): np.asarray(t, np.int64) for d, t in zip(detections, ids)})
    extract_features([job], models.backbone, banks["long_term"], bundle.extract.model_copy(update={"num_workers": 0}),
                     context_writer=banks.get("context"), device=models.device, on_progress=progress("extract"))
    readers = BankSet(open_bank(str(bank_dir / "long_term.zarr"), "r"),
                      open_bank(str(bank_dir / "context.zarr"), "r") if "context" in banks else None)
    if models.acar is not None:  # ACFB: the ACAR head's actor-context rows of this same video
        spec = specs["actor_context"].model_copy(update={"detector_source": source})
        ac = open_bank(str(bank_dir / "actor_context.zarr"), "a", spec)
        for video, rows in infer_actor_context(models.acar, readers, videos=[vid], device=models.device):
            ac.write_video(video, replace(rows, features=rows.features.astype(spec.numpy_dtype, copy=False)))
        readers = BankSet(readers.actors, readers.context, open_bank(str(bank_dir / "actor_context.zarr"), "r"))
    trained = models.head
    predictions = predict(trained.head, readers, trained.loss, trained.classes,
                          window_width=trained.config.window_width, window_per_second=trained.config.window_per_second,
                          batch_size=config.batch_size, device=models.device, on_progress=progress("head"))
    rows = readers.actors.read_video(vid)
    return ScoredActors(vid, predictions.timestamps, predictions.boxes,
                        _track_ids(rows, predictions.timestamps, predictions.boxes),
                        predictions.detector_scores, predictions.scores, predictions.action_ids)


def _track_ids(rows: Any, timestamps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The bank row's person id (the track id) of each scored actor, matched by keyframe and box."""
    out = np.full(len(timestamps), -1, np.int64)
    for i, (t, box) in enumerate(zip(timestamps, boxes)):
        same = np.nonzero(rows.timestamps == t)[0]
        if same.size:
            out[i] = rows.person_ids[same[np.argmin(np.abs(rows.boxes[same] - box).sum(axis=1))]]
    return out


def _annotate(path: Path, mp4: Path, actors: ScoredActors, names: dict[int, str], info: Any, config: InferConfig,
              on_progress: Any) -> None:
    """Decode, draw and encode one frame at a time at the source size and frame times."""
    from stad_core.video import VideoReader, encode_video

    marks = overlays(actors, names, width=info.width, height=info.height, threshold=config.threshold,
                     top_k=config.top_k)
    with VideoReader(path) as reader:
        times = reader.times

        def frames() -> Any:
            last = None
            produced = 0
            for i, rgb in reader.iter_frames():
                while produced < i and last is not None:  # a frame the decoder skipped: repeat the last one
                    yield float(times[produced]), last
                    produced += 1
                last = rgb
                yield float(times[i]), rgb
                produced = i + 1
            while produced < len(times) and last is not None:
                yield float(times[produced]), last
                produced += 1

        drawn = (even_size(f) for f in annotated_frames(frames(), marks, total=len(times), on_progress=on_progress))
        # Source frame times, so frame count, rate and duration match the input (variable rates too).
        tmp = mp4.with_name(f".{mp4.stem}.partial.mp4")  # the container follows the suffix
        encode_video(tmp, drawn, fps=info.fps, times=times)
        os.replace(tmp, mp4)


def infer_folder(bundle: str | Path | Bundle, inputs: Iterable[str | Path], out: str | Path,
                 config: InferConfig = InferConfig(), *, device: str = "cpu", force: bool = False,
                 on_video: Callable[[Path, InferResult | InferFailure], None] | None = None,
                 on_progress: Callable[[str, int, int], None] | None = None) -> FolderResult:
    """Every video of ``inputs`` (files and folders); failures are collected, the rest go on."""
    checked = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    models = Models(checked, device)
    target = Path(out).expanduser().resolve()
    # Never our own annotated MP4s (an output folder that is also an input folder).
    videos = [p for p in find_videos(inputs) if p.resolve().parent != target]
    if not videos:
        raise StadError(f"no video files in {', '.join(map(str, inputs))} (looked for {', '.join(VIDEO_SUFFIXES)})")
    taken: dict[str, Path] = {}
    result = FolderResult()
    for path in videos:
        vid = video_id_for(path)
        if vid in taken:
            vid = f"{vid}_{len(taken)}"
        taken[vid] = path
        try:
            done: InferResult | InferFailure = infer_video(models, path, out, config, video_id=vid, force=force,
                                                           on_progress=on_progress)
            result.done.append(done)
        except StadError as exc:
            done = InferFailure(path, str(exc))
            result.failed.append(done)
        if on_video is not None:
            on_video(path, done)
    return result


# -- the demo's last step -----------------------------------------------------------------------

DEMO_DETECTOR_IMAGES = 256  # training keyframes the demo's person detector sees (3 epochs: 192 steps)
DEMO_SEED = 1_000_003  # the held-out video's synthetic seed: a world the pipeline never saw


def demo_detector(workspace: str | Path, path: Path, *, images: int = DEMO_DETECTOR_IMAGES, epochs: int = 3,
                  on_progress: Callable[[int, int], None] | None = None) -> Path:
    """A ``tiny_fasterrcnn`` fine-tuned on an even subset of the workspace's training keyframes (ground
    truth boxes): the person detector of the demo's bundle, whose pipeline ran on ground-truth boxes.

    On the demo dataset (256 keyframes, 3 epochs: 192 steps, 91 s on two busy cores) it reaches val
    person AP@0.5 68.6; at score 0.6 (the demo's threshold) recall 0.74 and precision 0.74."""
    from stad_core.detection import DetectorTrainConfig
    from storage.stages.finetune import train_detector
    from storage.workspace import Workspace

    ingest = Workspace(workspace).require_latest("ingest", "the demo's infer step")
    train_detector(ingest, path, DetectorTrainConfig(epochs=epochs, warmup_iters=10), max_images=images,
                   on_progress=on_progress)
    return path


def demo_video(workspace: str | Path, path: Path, *, seconds: int = 20) -> Path:
    """A new synthetic video (the demo's settings, an unseen seed), without annotations."""
    from stad_core.synth import SynthConfig
    from stad_core.synth.generate import render_video
    from storage.stages.ingest import dataset_of
    from storage.workspace import Workspace

    ingest = Workspace(workspace).require_latest("ingest", "the demo's infer step")
    values: dict[str, Any] = {}
    dataset = Path(dataset_of(ingest).splits["train"]).parent.parent / "dataset.json"
    if dataset.is_file():  # the same look (size, fps, actors) as the pipeline's videos
        values = json.loads(dataset.read_text()).get("config", {})
    config = SynthConfig.model_validate({**values, "videos": 1, "seconds": seconds, "seed": DEMO_SEED})
    path.parent.mkdir(parents=True, exist_ok=True)
    render_video(config, 0, path)
    return path
