"""Export the synthetic dataset as action tubes: every actor's every action at every frame.

The synthetic world knows each actor's identity and state at any time, and the labelling rules of
``stad_core.synth.rules`` apply at any instant, not only at keyframes. So the tube ground truth is
exact: for each frame the renderer's pixel-exact actor boxes are labelled by the same rules as the AVA
keyframes, and each maximal run of consecutive frames in which an actor carries a class becomes one
tube of that class. Frames are numbered from 1 (decode index + 1); boxes are pixels of the
``width x height`` video. Validation videos are the test list (split 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from stad_core.errors import InputFileError
from stad_core.synth.classes import CLASSES, MIN_IN_FRAME
from stad_core.synth.config import SynthConfig
from stad_core.synth.generate import GENERATOR_VERSION
from stad_core.synth.planner import plan_world
from stad_core.synth.render import render_background, render_frame
from stad_core.synth.rules import label_keyframe
from stad_core.tubes.gt import TubeGroundTruth


def frame_labels(config: SynthConfig, index: int) -> list[dict[int, tuple[np.ndarray, tuple[int, ...]]]]:
    """Per frame of video ``index``: actor id -> (pixel box [4], 1-based action ids) of labelled actors."""
    world = plan_world(config, index)
    background = render_background(world.background_seed, config.width, config.height)
    scale = np.array([config.width, config.height, config.width, config.height], dtype=np.float64)
    out = []
    for i in range(config.seconds * config.fps):
        t = i / config.fps
        _, views = render_frame(world, background, t, track=True)
        labels = label_keyframe(world, t, views)  # type: ignore[arg-type]  # the rules hold at any instant
        out.append({a: (np.asarray(labels.boxes[a]) * scale, labels.actions[a]) for a in labels.boxes})
    return out


def runs_to_tubes(per_frame: list[dict[int, tuple[np.ndarray, tuple[int, ...]]]], num_labels: int,
                  min_frames: int = 2) -> tuple[dict[int, list[np.ndarray]], dict[int, list[int]]]:
    """Tubes (label index -> list of [n, 5]) and their actor ids from per-frame labels.

    A tube is a maximal run of consecutive frames in which one actor carries one class; runs shorter
    than ``min_frames`` are dropped (a one-frame tube has no temporal extent under the MultiSports rule).
    """
    open_runs: dict[tuple[int, int], list[list[float]]] = {}
    tubes: dict[int, list[np.ndarray]] = {}
    actors: dict[int, list[int]] = {}

    def close(key: tuple[int, int]) -> None:
        rows = open_runs.pop(key)
        if len(rows) >= min_frames:
            tubes.setdefault(key[1], []).append(np.array(rows, dtype=np.float64))
            actors.setdefault(key[1], []).append(key[0])

    for i, frame in enumerate(per_frame):
        present = set()
        for actor, (box, actions) in frame.items():
            for a in actions:
                key = (actor, a - 1)
                if not 0 <= a - 1 < num_labels:
                    continue
                present.add(key)
                open_runs.setdefault(key, []).append([i + 1, *box.tolist()])
        for key in [k for k in open_runs if k not in present]:
            close(key)
    for key in list(open_runs):
        close(key)
    return tubes, actors


def synth_tubes(config: SynthConfig, *, videos: Iterable[int] | None = None, min_frames: int = 2) -> TubeGroundTruth:
    """The tube ground truth of the synthetic dataset ``config`` describes (all videos by default)."""
    indices = list(range(config.videos)) if videos is None else list(videos)
    labels = [c.name for c in CLASSES]
    train, test, nframes, resolution, gttubes = [], [], {}, {}, {}
    actor_ids: dict[str, dict[int, list[int]]] = {}
    for i in indices:
        vid = config.video_id(i)
        (test if config.is_val(i) else train).append(vid)
        nframes[vid] = config.seconds * config.fps
        resolution[vid] = (config.height, config.width)
        gttubes[vid], actor_ids[vid] = runs_to_tubes(frame_labels(config, i), len(labels), min_frames)
    return TubeGroundTruth(labels, [train], [test], nframes, resolution, gttubes,
                           extra={"actors": actor_ids, "fps": config.fps, "generator_version": GENERATOR_VERSION,
                                  "min_in_frame": MIN_IN_FRAME})


def synth_config_of(dataset_dir: str | Path) -> SynthConfig:
    """The ``SynthConfig`` a generated dataset was made with (from its ``dataset.json``)."""
    path = Path(dataset_dir) / "dataset.json"
    if not path.is_file():
        raise InputFileError(path, "not found", hint="point at a folder written by `stad synth`")
    meta = json.loads(path.read_text())
    if meta.get("generator_version") != GENERATOR_VERSION:
        raise InputFileError(path, f"generator version {meta.get('generator_version')!r} differs from this "
                                   f"code's {GENERATOR_VERSION!r}", hint="regenerate the dataset with `stad synth`")
    return SynthConfig(**meta["config"])
