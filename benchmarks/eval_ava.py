"""Benchmark: exact AVA frame-mAP on an AVA-val-sized submission.

Generates (seeded) a synthetic AVA-val-scale case -- by default 64 videos x 897 keyframes x ~3
persons, one detection box per person (plus some spurious boxes) with a score for each of the 60
evaluated classes, i.e. ~11M detection rows (~0.6 GB of CSV) -- writes it with vectorised CSV
writing into a temporary folder, then evaluates it with ``stad_core.evaluation.evaluate_files``
in a fresh subprocess and prints wall time (reading included: ``read_ava_csv``, whose fast path
takes the clean file), peak RSS and the mAP.

Target (issue): under 10 s and under 2 GB on 2 cores. The official ActivityNet evaluator needs
~270 s CPU and ~1.8 GB on this size. Timings are indicative on a shared machine.

    python benchmarks/eval_ava.py                    # full size
    python benchmarks/eval_ava.py --videos 4         # quick run
    python benchmarks/eval_ava.py --keep DIR         # keep the files (e.g. to run another evaluator)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stad_core.ava import AvaTable, KeyframeKey, LabelMap, write_ava_csv, write_exclusions, write_labelmap

#: The 60 classes of the AVA ActivityNet challenge list (ids only; names are placeholders).
AVA_60 = (
    1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 20, 22, 24, 26, 27, 28, 29, 30, 34, 36, 37, 38, 41, 43,
    45, 46, 47, 48, 49, 51, 52, 54, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 72, 73, 74, 76,
    77, 78, 79, 80,
)  # fmt: skip

# Peak memory is VmHWM of the child's own address space: ru_maxrss would inherit the parent's
# high-water mark across fork + exec (Linux keeps it), i.e. the generator's memory.
EVAL_SNIPPET = """
import json, resource, sys, time
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
from stad_core.evaluation import evaluate_files
t1 = time.perf_counter()
c1 = time.process_time()
r = evaluate_files(*sys.argv[1:5], protocol=sys.argv[5])
t2 = time.perf_counter()
c2 = time.process_time()
print(json.dumps({"import_s": t1 - t0, "evaluate_s": t2 - t1, "mAP": r.mAP, "cpu_s": c2 - c1,
                  "peak_rss_mb": hwm_mb(), "stats": r.stats}))
"""


def generate(out: Path, *, videos: int, keyframes: int, persons: float, seed: int) -> dict[str, Path]:
    """Write labelmap, ground truth, detections and exclusions for a synthetic AVA-val-like set."""
    rng = np.random.default_rng(seed)
    classes = np.asarray(AVA_60, dtype=np.int32)
    pose = classes[classes <= 14]
    other = classes[classes > 14]
    names = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"), 11)) for _ in range(videos)], dtype=object)
    names = np.unique(names)
    videos = len(names)

    # Persons per keyframe: 1..5, mean ~persons.
    n_kf = videos * keyframes
    per_kf = np.clip(rng.poisson(persons - 1, n_kf) + 1, 1, 8)
    n_p = int(per_kf.sum())
    kf_of_p = np.repeat(np.arange(n_kf), per_kf)
    video_of_p = (kf_of_p // keyframes).astype(np.int32)
    t_of_p = (902 + kf_of_p % keyframes).astype(np.float64)
    xy = rng.random((n_p, 2)) * 0.6
    wh = 0.1 + rng.random((n_p, 2)) * 0.35
    gt_box = np.round(np.column_stack([xy, np.minimum(xy + wh, 1.0)]), 3)

    # Ground truth: one pose label per person plus 0-3 other labels.
    extra = rng.poisson(1.0, n_p).clip(0, 3)
    gt_person = np.concatenate([np.arange(n_p), np.repeat(np.arange(n_p), extra)])
    gt_action = np.concatenate([rng.choice(pose, n_p), rng.choice(other, int(extra.sum()))])
    order = np.argsort(gt_person, kind="stable")
    gt_person, gt_action = gt_person[order], gt_action[order]
    gt = AvaTable(
        videos=names, video_index=video_of_p[gt_person], timestamp=t_of_p[gt_person], boxes=gt_box[gt_person],
        action_id=gt_action, person_id=gt_person.astype(np.int64), score=None, line=np.zeros(len(gt_person), np.int64),
    )

    # Detections: every person's box jittered, plus ~15% spurious boxes; 60 class scores each.
    spurious = rng.random(n_p) < 0.15
    det_p = np.concatenate([np.arange(n_p), np.flatnonzero(spurious)])
    det_p.sort(kind="stable")
    n_b = len(det_p)
    is_spurious = np.r_[False, det_p[1:] == det_p[:-1]]
    jitter = rng.normal(0.0, 0.03, (n_b, 4))
    jitter[is_spurious] = rng.normal(0.0, 0.25, (int(is_spurious.sum()), 4))
    box = gt_box[det_p] + jitter
    box = np.round(np.clip(np.column_stack([np.minimum(box[:, :2], box[:, 2:]), np.maximum(box[:, :2], box[:, 2:])]), 0, 1), 3)
    # Scores: noise, raised for the person's true labels.
    truth = np.zeros((n_p, len(classes)), dtype=bool)
    class_index = np.searchsorted(classes, gt_action)
    truth[gt_person, class_index] = True
    score = rng.random((n_b, len(classes))) ** 3 * 0.5  # two halves: scores stay in [0, 1] (they are checked)
    score += truth[det_p] * rng.random((n_b, len(classes))) * 0.5 * ~is_spurious[:, None]
    score = np.round(score, 6)
    det = AvaTable(
        videos=names,
        video_index=np.repeat(video_of_p[det_p], len(classes)),
        timestamp=np.repeat(t_of_p[det_p], len(classes)),
        boxes=np.repeat(box, len(classes), axis=0),
        action_id=np.tile(classes, n_b),
        person_id=np.full(n_b * len(classes), -1, np.int64),
        score=score.reshape(-1),
        line=np.zeros(n_b * len(classes), np.int64),
    )
    excluded = {KeyframeKey(str(names[v]), 902 + int(t)) for v, t in zip(rng.integers(0, videos, 37), rng.integers(0, keyframes, 37))}

    paths = {"labelmap": out / "labelmap.pbtxt", "groundtruth": out / "gt.csv", "detections": out / "det.csv", "exclusions": out / "excluded.csv"}
    write_labelmap(paths["labelmap"], LabelMap({int(c): f"class {c}" for c in classes}))
    write_ava_csv(paths["groundtruth"], gt)
    del gt
    write_ava_csv(paths["detections"], det)
    write_exclusions(paths["exclusions"], excluded)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--keyframes", type=int, default=897)
    parser.add_argument("--persons", type=float, default=3.0, help="mean persons per keyframe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="2019")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()

    out = args.keep or Path(tempfile.mkdtemp(prefix="stad-eval-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        paths = generate(out, videos=args.videos, keyframes=args.keyframes, persons=args.persons, seed=args.seed)
        gen_s = time.perf_counter() - t
        det_rows = sum(1 for _ in open(paths["detections"], "rb"))
        size_gb = paths["detections"].stat().st_size / 1e9
        print(f"generated {det_rows:,} detection rows ({size_gb:.2f} GB CSV) in {gen_s:.1f} s")
        cmd = [sys.executable, "-c", EVAL_SNIPPET] + [str(paths[k]) for k in ("labelmap", "groundtruth", "detections", "exclusions")] + [args.protocol]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(f"evaluation failed:\n{proc.stderr}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"evaluate_files (read + evaluate): {res['evaluate_s']:.2f} s wall")
        print(f"subprocess total (incl. interpreter start + imports {res['import_s']:.2f} s): {wall:.2f} s")
        print(f"evaluate_files CPU time (user + sys, all threads): {res['cpu_s']:.2f} s")
        print(f"machine load average at the end: {os.getloadavg()[0]:.1f} (2 cores; wall times are indicative)")
        print(f"peak RSS of the evaluating process (VmHWM): {res['peak_rss_mb']:.0f} MB")
        print(f"mAP@0.5IOU: {res['mAP']:.6f}")
        print("rows: " + ", ".join(f"{k}={v:,}" for k, v in res["stats"].items()))
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
