"""Generate a synthetic STAD dataset: render + encode every video, label every keyframe, write the
AVA files, ``events.csv`` and ``dataset.json``.

Layout under ``out``::

    videos/<video_id>.mp4
    annotations/train.csv, val.csv          AVA ground truth (8 columns, no header)
    annotations/label_map.pbtxt             label { name label_id label_type } layout
    annotations/exclusions.csv              video_id,tttt
    annotations/events.csv                  scripted episodes/objects per video (debugging)
    dataset.json                            generator version, config, classes, splits, stats

``dataset.json`` is written last and marks the dataset complete.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np

from stad_core import __version__
from stad_core.atomic import atomic_write_text
from stad_core.errors import StadError
from stad_core.progress import ProgressFn, report
from stad_core.synth.classes import CLASSES, GROUPS, MIN_IN_FRAME, MIN_UNOCCLUDED
from stad_core.synth.config import SynthConfig
from stad_core.synth.planner import plan_world
from stad_core.synth.render import render_background, render_frame
from stad_core.synth.rules import KeyframeLabels, label_keyframe
from stad_core.synth.world import World
from stad_core.video import encode_video

GENERATOR_VERSION = "3"  # bump whenever the same config would render different data
RECOMMENDED_CLIP = {"frames": 16, "stride": 1, "seconds": 1.6, "alternative": "8x2 (1.6 s)"}
OUTPUTS = ("videos", "annotations", "dataset.json")


@dataclass
class VideoResult:
    """What generating one video produced (everything needed for the annotation files and stats)."""

    index: int
    video_id: str
    split: str
    frames: int
    keyframes: list[KeyframeLabels]
    events: list[tuple[str, str, float, float, str, str]]
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SynthSummary:
    """Reference to a generated dataset (what the CLI prints and flows return)."""

    out: Path
    videos: int
    rows: int
    boxes: int
    keyframes: int
    excluded: int
    config_hash: str
    skipped: bool  # True when an identical dataset was already there


def _events(world: World) -> list[tuple[str, str, float, float, str, str]]:
    rows = [(world.video_id, e.kind, e.t0, e.t1, "+".join(map(str, e.actors)), e.detail) for e in world.episodes]
    rows += [(world.video_id, "toss", t.t0, t.t1, f"{t.thrower}+{t.catcher}", "ball in flight") for t in world.tosses]
    for actor in world.actors:
        for a, b in actor.speech:
            rows.append((world.video_id, "speak", a, b, str(actor.actor_id), ""))
    for p in world.props:
        where = f"x={p.x:.1f} y={p.y:.1f} w={p.w:.1f} h={p.h:.1f}"
        rows.append((world.video_id, f"prop_{p.kind}", 0.0, world.seconds, "", where))
    return sorted(rows, key=lambda r: (r[2], r[1], r[4]))


def render_video(config: SynthConfig, index: int, path: Path, on_frame: ProgressFn | None = None) -> VideoResult:
    """Plan, render and encode video ``index`` to ``path``; label its keyframes."""
    world = plan_world(config, index)
    background = render_background(world.background_seed, config.width, config.height)
    n_frames = config.seconds * config.fps
    keyframes = set(config.keyframe_seconds)
    labels: list[KeyframeLabels] = []

    def frames() -> Iterator[np.ndarray]:  # rendered one at a time, encoded as they come
        for i in range(n_frames):
            t = i / config.fps
            is_key = i % config.fps == 0 and i // config.fps in keyframes
            image, views = render_frame(world, background, t, track=is_key)
            if is_key:
                labels.append(label_keyframe(world, i // config.fps, views))
            if on_frame is not None and (i + 1) % config.fps == 0:
                on_frame(i + 1, n_frames)
            yield image

    # Single-threaded x264 without B-frames: reproducible bytes and cheap seeks.
    x264 = {"crf": str(config.crf), "preset": "veryfast", "bf": "0", "threads": "1"}
    encode_video(path, frames(), fps=config.fps, keyframe_interval=config.gop, options=x264)
    counts: Counter[int] = Counter(a for kf in labels for acts in kf.actions.values() for a in acts)
    stats = {
        "video_id": world.video_id,
        "split": "val" if config.is_val(index) else "train",
        "file": f"videos/{world.video_id}.mp4",
        "frames": n_frames,
        "actors": len(world.actors),
        "key_pickers": [a.actor_id for a in world.actors if a.role == "key_picker"],
        "alarm": None if world.alarm is None else [round(world.alarm.t0, 3), round(world.alarm.t1, 3)],
        "keys": [
            {"x": round(k.x, 2), "y": round(k.y, 2), "picker": k.picker, "pickup": round(k.pickup, 3)} for k in world.keys
        ],
        "props": [p.kind for p in world.props],
        "keyframes": len(labels),
        "boxes": sum(len(kf.boxes) for kf in labels),
        "rows": sum(len(a) for kf in labels for a in kf.actions.values()),
        "excluded": {kf.t: kf.excluded for kf in labels if kf.excluded},
        "label_counts": {c.name: counts.get(c.label_id, 0) for c in CLASSES},
        "episodes": dict(Counter(e.kind for e in world.episodes)),
        "tosses": len(world.tosses),
    }
    return VideoResult(index, world.video_id, stats["split"], n_frames, labels, _events(world), stats)


def _render_job(config: SynthConfig, index: int, path: str) -> VideoResult:
    return render_video(config, index, Path(path))


def write_annotations(out: Path, config: SynthConfig, results: list[VideoResult]) -> dict[str, str]:
    """Write the AVA files (through ``stad_core.ava``) and events.csv; returns {name: relative path}."""
    from stad_core.ava import AvaTable, KeyframeKey, LabelMap, write_ava_csv, write_exclusions, write_labelmap

    ann = out / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    files = {}
    for split in ("train", "val"):
        vid, ts, boxes, act, pid = [], [], [], [], []
        for r in results:
            if r.split != split:
                continue
            for kf in r.keyframes:
                for person in sorted(kf.actions):
                    for action in kf.actions[person]:
                        vid.append(r.video_id)
                        ts.append(kf.t)
                        boxes.append(kf.boxes[person])
                        act.append(action)
                        pid.append(person)
        table = AvaTable.from_arrays(vid, ts, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), act, pid)
        write_ava_csv(ann / f"{split}.csv", table)
        files[split] = f"annotations/{split}.csv"
    labelmap = LabelMap({c.label_id: c.name for c in CLASSES}, {c.label_id: c.group for c in CLASSES})
    write_labelmap(ann / "label_map.pbtxt", labelmap)
    excluded = [KeyframeKey(r.video_id, kf.t) for r in results for kf in r.keyframes if kf.excluded]
    write_exclusions(ann / "exclusions.csv", excluded)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["video_id", "kind", "t0", "t1", "actors", "detail"])
    for r in results:
        for v, kind, t0, t1, actors, detail in r.events:
            writer.writerow([v, kind, f"{t0:.3f}", f"{t1:.3f}", actors, detail])
    (ann / "events.csv").write_text(buf.getvalue())
    files.update(label_map="annotations/label_map.pbtxt", exclusions="annotations/exclusions.csv",
                 events="annotations/events.csv")
    return files


def dataset_manifest(config: SynthConfig, results: list[VideoResult], files: dict[str, str]) -> dict[str, Any]:
    """The ``dataset.json`` content (deterministic: no wall-clock times, no host names)."""
    kfs = config.keyframe_seconds
    totals: Counter[str] = Counter()
    for r in results:
        totals.update(r.stats["label_counts"])
    return {
        "generator": "stad.synth",
        "generator_version": GENERATOR_VERSION,
        "stad_version": __version__,
        "seed": config.seed,
        "config_hash": config.config_hash(),
        "config": config.model_dump(mode="json"),
        "fps": config.fps,
        "resolution": {"width": config.width, "height": config.height},
        "seconds": config.seconds,
        "keyframes": {"first": kfs.start, "last": kfs.stop - 1, "per_second": 1},
        "recommended_clip": RECOMMENDED_CLIP,
        "visibility": {"min_in_frame": MIN_IN_FRAME, "min_unoccluded_for_evaluation": MIN_UNOCCLUDED},
        "classes": [{"id": c.label_id, "name": c.name, "group": c.group, "rule": c.rule} for c in CLASSES],
        "groups": {g: [c.label_id for c in CLASSES if c.group == g] for g in GROUPS},
        "splits": {s: [r.video_id for r in results if r.split == s] for s in ("train", "val")},
        "files": files,
        "totals": {
            "videos": len(results),
            "keyframes": sum(r.stats["keyframes"] for r in results),
            "boxes": sum(r.stats["boxes"] for r in results),
            "rows": sum(r.stats["rows"] for r in results),
            "excluded_keyframes": sum(len(r.stats["excluded"]) for r in results),
            "label_counts": {c.name: totals.get(c.name, 0) for c in CLASSES},
        },
        "videos": [r.stats for r in results],
    }


def check_target(out: str | Path, config: SynthConfig, *, force: bool = False) -> bool:
    """True when ``out`` already holds this exact dataset; raises ``StadError`` if it holds something
    else (unless ``force``, which deletes the generator's outputs there and returns False)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StadError(f"{out} exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return False
    manifest = out / "dataset.json"
    existing = None
    if manifest.is_file():
        try:
            existing = json.loads(manifest.read_text())
        except (OSError, ValueError):
            existing = None
    same = (
        isinstance(existing, dict)
        and existing.get("generator") == "stad.synth"
        and existing.get("generator_version") == GENERATOR_VERSION
        and existing.get("config_hash") == config.config_hash()
    )
    if same and not force:
        return True
    if not force:
        what = (
            "a different synthetic dataset"
            if isinstance(existing, dict)
            else "files that are not a complete synthetic dataset"
        )
        raise StadError(f"{out} is not empty and holds {what}; choose another --out or pass --force to replace it")
    for name in OUTPUTS:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    return False


def generate_dataset(
    config: SynthConfig,
    out: str | Path,
    *,
    force: bool = False,
    workers: int = 1,
    on_progress: ProgressFn | None = None,
) -> SynthSummary:
    """Generate the dataset described by ``config`` under ``out``.

    An identical dataset already in ``out`` is kept (``skipped=True``); a different or incomplete
    one is an error unless ``force``. ``workers`` processes render videos in parallel (the output
    does not depend on it, so it is not part of the config). ``on_progress(done, total)`` counts
    rendered frames.
    """
    if workers < 1:
        raise StadError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    if check_target(out, config, force=force):
        data = json.loads((out / "dataset.json").read_text())["totals"]
        return SynthSummary(out, data["videos"], data["rows"], data["boxes"], data["keyframes"],
                            data["excluded_keyframes"], config.config_hash(), skipped=True)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    per_video = config.seconds * config.fps
    total = config.videos * per_video
    report(on_progress, 0, total)
    results: list[VideoResult] = []
    paths = [out / "videos" / f"{config.video_id(i)}.mp4" for i in range(config.videos)]
    if workers > 1 and config.videos > 1:
        # spawn, not fork: the caller may be multi-threaded (Prefect, torch).
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, config.videos), mp_context=context) as pool:
            futures = [pool.submit(_render_job, config, i, str(paths[i])) for i in range(config.videos)]
            for n, fut in enumerate(as_completed(futures), start=1):
                results.append(fut.result())
                report(on_progress, n * per_video, total)
    else:
        for i in range(config.videos):
            def frame_done(done: int, _total: int, base: int = i * per_video) -> None:
                report(on_progress, base + done, total)

            results.append(render_video(config, i, paths[i], frame_done if on_progress else None))
    results.sort(key=lambda r: r.index)
    files = write_annotations(out, config, results)
    manifest = dataset_manifest(config, results, files)
    atomic_write_text(out / "dataset.json", json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    t = manifest["totals"]
    return SynthSummary(out, t["videos"], t["rows"], t["boxes"], t["keyframes"], t["excluded_keyframes"],
                        config.config_hash(), skipped=False)
