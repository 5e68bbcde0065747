"""Benchmark: exact AVA frame-mAP on an AVA-val-sized submission.

Generates (seeded) a synthetic AVA-val-scale case -- by default 64 videos x 897 keyframes x ~3
persons, one detection box per person (plus some spurious boxes) with a score for each of the 60
evaluated classes, i.e. ~11M detection rows (~0.6 GB of CSV) -- writes it with vectorised CSV
writing into a temporary folder, then evaluates it with ``stad_core.evaluation.evaluate_files``
in a fresh subprocess and prints wall time (reading included: ``read_ava_csv``, whose fast path
takes the clean file), CPU time, peak RSS and the mAP.

``--baseline DIR`` evaluates the same files with another source tree side by side (``DIR`` holds
its ``stad_core``, e.g. ``git worktree add /tmp/base <rev>`` or ``git archive <rev> stad_core |
tar -x -C DIR``); runs alternate (baseline, current, baseline, ...) and each path reports its best
of ``--repeat`` runs, so both see the same machine state. The two mAPs must be the same float.

Target (issue #18): under 3 s wall and 1.5 GB at this size. The official ActivityNet evaluator
needs ~270 s CPU and ~1.8 GB. Timings are indicative on a shared machine.

    python benchmarks/eval_ava.py                    # full size
    python benchmarks/eval_ava.py --videos 4         # quick run
    python benchmarks/eval_ava.py --keep DIR         # keep the files (reused by the next run)
    python benchmarks/eval_ava.py --keep DIR --baseline /tmp/base --repeat 3 --variants
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
import json, os, resource, sys, time
if os.environ.get("STAD_BENCH_SOURCE"):
    sys.path.insert(0, os.environ["STAD_BENCH_SOURCE"])  # ahead of the cwd and the installed tree
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t0 = time.perf_counter()
import stad_core
from stad_core.evaluation import evaluate_files
t1 = time.perf_counter()
c1 = time.process_time()
r = evaluate_files(*sys.argv[1:4], sys.argv[4] or None, protocol=sys.argv[5], variant=sys.argv[6])
t2 = time.perf_counter()
c2 = time.process_time()
print(json.dumps({"import_s": t1 - t0, "evaluate_s": t2 - t1, "mAP": r.mAP, "cpu_s": c2 - c1,
                  "peak_rss_mb": hwm_mb(), "stats": r.stats, "source": os.path.dirname(os.path.dirname(stad_core.__file__))}))
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


def evaluate(paths: dict[str, Path], protocol: str, variant: str, source: Path | None) -> dict:
    """One evaluation in a fresh interpreter (``source``: another tree's ``stad_core`` first on
    the path); returns the snippet's figures plus ``wall_s`` of the whole subprocess."""
    files = [str(paths[k]) for k in ("labelmap", "groundtruth", "detections")]
    files.append(str(paths["exclusions"]) if protocol == "2019" else "")
    cmd = [sys.executable, "-c", EVAL_SNIPPET, *files, protocol, variant]
    env = dict(os.environ)
    env.pop("STAD_BENCH_SOURCE", None)
    if source is not None:
        env["STAD_BENCH_SOURCE"] = str(source.resolve())
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"evaluation failed ({source or 'current tree'}):\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall_s"] = wall
    if source is not None and Path(res["source"]).resolve() != source.resolve():
        sys.exit(f"the baseline run imported stad_core from {res['source']}, not {source}")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--keyframes", type=int, default=897)
    parser.add_argument("--persons", type=float, default=3.0, help="mean persons per keyframe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="2019")
    parser.add_argument("--variants", action="store_true", help="also protocol 2020 and the mmaction2/pyslowfast variants")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them (reused when present)")
    parser.add_argument("--baseline", type=Path, help="a folder holding another revision's stad_core, run side by side")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path; the best is reported")
    args = parser.parse_args()

    out = args.keep or Path(tempfile.mkdtemp(prefix="stad-eval-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        names = {"labelmap": "labelmap.pbtxt", "groundtruth": "gt.csv", "detections": "det.csv", "exclusions": "excluded.csv"}
        paths = {k: out / v for k, v in names.items()}
        if args.keep is not None and all(p.exists() for p in paths.values()):
            print(f"reusing the files in {out} (delete them to regenerate with other options)")
        else:
            t = time.perf_counter()
            paths = generate(out, videos=args.videos, keyframes=args.keyframes, persons=args.persons, seed=args.seed)
            print(f"generated in {time.perf_counter() - t:.1f} s")
        det_rows = sum(1 for _ in open(paths["detections"], "rb"))
        size_gb = paths["detections"].stat().st_size / 1e9
        print(f"{det_rows:,} detection rows ({size_gb:.2f} GB CSV)")
        print(f"machine load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
        runs = [(args.protocol, "official")]
        if args.variants:
            runs += [r for r in (("2019", "official"), ("2020", "official"), ("2019", "mmaction2"), ("2019", "pyslowfast")) if r not in runs]
        sources: list[tuple[str, Path | None]] = [("current", None)]
        if args.baseline is not None:
            sources.insert(0, ("baseline", args.baseline))
        for protocol, variant in runs:
            results: dict[str, list[dict]] = {name: [] for name, _ in sources}
            for _ in range(args.repeat):
                for name, source in sources:
                    results[name].append(evaluate(paths, protocol, variant, source))
            print(f"\n== protocol {protocol}, variant {variant} (best of {args.repeat}) ==")
            print(f"{'path':<9} {'evaluate_files wall':>20} {'CPU (all threads)':>18} {'subprocess wall':>16} {'peak RSS':>9}  mAP")
            for name, res in results.items():
                best = min(res, key=lambda r: r["evaluate_s"])
                print(
                    f"{name:<9} {best['evaluate_s']:>18.2f} s {min(r['cpu_s'] for r in res):>16.2f} s "
                    f"{min(r['wall_s'] for r in res):>14.2f} s {min(r['peak_rss_mb'] for r in res):>6.0f} MB  {best['mAP']!r}"
                )
            maps = {repr(r["mAP"]) for res in results.values() for r in res}
            if len(maps) > 1:
                print(f"MISMATCH: the mAPs differ: {sorted(maps)}")
            last = results["current"][-1]
            print("rows: " + ", ".join(f"{k}={v:,}" for k, v in last["stats"].items()))
        print(f"\nmachine load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores; wall times are indicative)")
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
