"""Benchmark: tube linking + frame-/video-mAP on a MultiSports-sized test set, and trained heads on tubes.

``eval`` (default): generates (seeded) ground truth for ``--videos`` test videos (default 1,600, ~520
frames each, 66 classes of which the official six are not evaluated) and noisy per-frame detections
around it plus distractors, then times stad's frame-mAP, linking (the public rules) and video-mAP at
0.1..0.9. With ``--public DIR`` (a folder holding the MultiSports ``evaluate_multisports.py`` and
``mm_link.py``, MMAction2's ``link_tubes`` transcribed with its score bug fixed) and ``--public-python``
(an interpreter with numpy < 2.3, which that code needs), the same files go through the public code on
``--public-videos`` of the videos (its linking visits every frame of every class, so the full set takes
hours) and the figures are compared on that subset.

``heads``: synthetic tubes end to end (synth -> tubes_ingest -> tubes_detect (ground-truth boxes) ->
finetune (export) -> tubes_extract -> train each head -> tubes_evaluate) and prints each head's
f-mAP@0.5, v-mAP@0.2, v-mAP@0.5 and v-mAP@0.1:0.9.

    python benchmarks/tubes.py eval --videos 1600
    python benchmarks/tubes.py eval --videos 1600 --public /tmp/scratch-14 \
        --public-python /tmp/scratch-14/venv/bin/python --public-videos 100
    python benchmarks/tubes.py heads --videos 6 --seconds 30 --stride 2 --heads linear lfb_max acrn
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stad_core.tubes import MULTISPORTS_SKIPPED, VIDEO_THRESHOLDS, frame_ap, save_ground_truth, video_ap
from stad_core.tubes.gt import TubeGroundTruth
from stad_core.tubes.linking import link_all
from stad_core.tubes.simulate import noisy_frame_detections, random_ground_truth

PUBLIC_SCRIPT = r"""
import json, pickle, sys, time, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
import evaluate_multisports as ev
from mm_link import link_tubes
gt_path, fd_path, out_path = sys.argv[2:5]
gt = pickle.load(open(gt_path, "rb")); fd = pickle.load(open(fd_path, "rb"))
t0 = time.perf_counter(); f = ev.frameAP(gt_path, fd_path, 0.5, print_info=False); t1 = time.perf_counter()
tubes = link_tubes(gt, fd.copy()); t2 = time.perf_counter()
pickle.dump(tubes, open(out_path + ".tubes.pkl", "wb"))
v = [ev.videoAP(gt_path, out_path + ".tubes.pkl", 0.1 + 0.1 * i, print_info=False) for i in range(9)]
t3 = time.perf_counter()
json.dump({"frame": f, "video": v, "frame_s": t1 - t0, "link_s": t2 - t1, "video_s": t3 - t2}, open(out_path, "w"))
"""


def make_case(videos: int, seed: int) -> tuple[TubeGroundTruth, np.ndarray]:
    gt = random_ground_truth(videos, 66, frames=(400, 640), tubes_per_video=(2, 6), seed=seed)
    for i, name in enumerate(MULTISPORTS_SKIPPED):
        gt.labels[60 + i] = name
    fd = noisy_frame_detections(gt, seed=seed + 1, recall=0.95, jitter=0.04, distractors=0.01)
    return gt, fd


def subset(gt: TubeGroundTruth, fd: np.ndarray, n: int) -> tuple[TubeGroundTruth, np.ndarray]:
    vids = gt.videos()[:n]
    sub = TubeGroundTruth(gt.labels, [[]], [vids], {v: gt.nframes[v] for v in vids},
                          {v: gt.resolution[v] for v in vids}, {v: gt.gttubes[v] for v in vids})
    return sub, fd[fd[:, 0] < n]


def run_stad(gt: TubeGroundTruth, fd: np.ndarray) -> dict:
    t0 = time.perf_counter()
    f = frame_ap(gt, fd)
    t1 = time.perf_counter()
    tubes = link_all(fd, gt.videos(), len(gt.labels), nframes=gt.nframes)
    t2 = time.perf_counter()
    v = video_ap(gt, tubes, thresholds=VIDEO_THRESHOLDS)
    t3 = time.perf_counter()
    return {"frame": 100 * f.mean, "video": [100 * v[t].mean for t in VIDEO_THRESHOLDS],
            "frame_s": t1 - t0, "link_s": t2 - t1, "video_s": t3 - t2,
            "tubes": sum(len(x) for x in tubes.values())}


def fmt(name: str, r: dict) -> str:
    v = r["video"]
    return (f"{name:8s} f-mAP {r['frame']:6.2f} v-mAP@0.2 {v[1]:6.2f} @0.5 {v[4]:6.2f} @0.1:0.9 {np.mean(v):6.2f} | "
            f"frame-AP {r['frame_s']:7.2f} s  linking {r['link_s']:8.2f} s  video-AP(9 thr) {r['video_s']:7.2f} s")


def bench_eval(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    gt, fd = make_case(args.videos, args.seed)
    print(f"generated {args.videos} videos, {sum(gt.nframes.values())} frames, {gt.num_tubes()} GT tubes, "
          f"{len(fd)} frame detections in {time.perf_counter() - t0:.1f} s")
    print(fmt("stad", run_stad(gt, fd)))
    if args.public:
        sub_gt, sub_fd = subset(gt, fd, args.public_videos)
        with tempfile.TemporaryDirectory() as tmp:
            g, f, o = (str(Path(tmp) / n) for n in ("gt.pkl", "fd.pkl", "out.json"))
            save_ground_truth(sub_gt, g)
            Path(f).write_bytes(pickle.dumps(sub_fd))
            ours = run_stad(sub_gt, sub_fd)
            subprocess.run([args.public_python, "-c", PUBLIC_SCRIPT, args.public, g, f, o], check=True)
            pub = json.loads(Path(o).read_text())
        print(f"on the first {args.public_videos} videos ({len(sub_fd)} frame detections):")
        print(fmt("stad", ours))
        print(fmt("public", pub))
        d = max([abs(ours["frame"] - pub["frame"])] + [abs(a - b) for a, b in zip(ours["video"], pub["video"])])
        print(f"max |dAP| {d:.2e} points; linking speed-up x{pub['link_s'] / max(ours['link_s'], 1e-9):.0f}, "
              f"frame-AP x{pub['frame_s'] / max(ours['frame_s'], 1e-9):.0f}, video-AP x{pub['video_s'] / max(ours['video_s'], 1e-9):.0f}")


def bench_heads(args: argparse.Namespace) -> None:
    from stad_core.heads.variants import variant_fields
    from stad_core.stage_configs import DetectStageConfig, demo_config
    from stad_core.tubes.config import TubesEvaluateConfig, TubesIngestConfig
    from storage.stages.runner import run_stage
    from storage.uri import local_path

    ws = args.workspace or tempfile.mkdtemp(prefix="stad-tubes-")
    base = demo_config("tiny", videos=args.videos, seconds=args.seconds, alarm_fraction=0.5, keyframe_margin=2)
    t0 = time.perf_counter()
    run_stage("synth", base.synth, ws)
    ingest = run_stage("tubes_ingest", TubesIngestConfig(frame_stride=args.stride, margin_frames=args.margin), ws)
    up = {"ingest": ingest}
    detect = run_stage("tubes_detect", DetectStageConfig(source="groundtruth"), ws, upstream=up)
    finetune = run_stage("finetune", base.finetune.model_copy(update={"train": None}), ws, upstream=up)
    extract = run_stage("tubes_extract", base.extract, ws, upstream={**up, "detect": detect, "finetune": finetune})
    print(f"{args.videos} videos x {args.seconds} s, stride {args.stride}: {ingest.counts['keyframes']} frame keyframes, "
          f"{ingest.counts['tubes']} tubes; banks in {time.perf_counter() - t0:.0f} s ({ws})")
    for head in args.heads:
        t1 = time.perf_counter()
        train = run_stage("train", base.train.model_copy(update={**variant_fields(head), "epochs": args.epochs}), ws,
                          upstream={**up, "extract": extract})
        ev = run_stage("tubes_evaluate", TubesEvaluateConfig(link_min_length=args.min_length), ws,
                       upstream={"model": train})
        s = json.loads((local_path(ev.uri) / "summary.json").read_text())
        print(f"{head:10s} f-mAP@0.5 {100 * s['f-mAP@0.5']:6.2f}  v-mAP@0.2 {100 * s['v-mAP@0.2']:6.2f}  "
              f"v-mAP@0.5 {100 * s['v-mAP@0.5']:6.2f}  v-mAP@0.1:0.9 {100 * s['v-mAP@0.1:0.9']:6.2f}  "
              f"({s['tubes']} tubes, {time.perf_counter() - t1:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode")
    e = sub.add_parser("eval")
    e.add_argument("--videos", type=int, default=1600)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--public", help="folder with evaluate_multisports.py and mm_link.py")
    e.add_argument("--public-python", default=sys.executable)
    e.add_argument("--public-videos", type=int, default=100)
    h = sub.add_parser("heads")
    h.add_argument("--videos", type=int, default=6)
    h.add_argument("--seconds", type=int, default=30)
    h.add_argument("--stride", type=int, default=2)
    h.add_argument("--margin", type=int, default=20, help="frames without keyframes at each end")
    h.add_argument("--epochs", type=int, default=8)
    h.add_argument("--min-length", type=int, default=8, help="shortest linked tube kept, in frames")
    h.add_argument("--heads", nargs="+", default=["linear", "lfb_max"])
    h.add_argument("--workspace")
    args = parser.parse_args()
    if args.mode == "heads":
        bench_heads(args)
    else:
        if args.mode is None:
            args = e.parse_args([])
        bench_eval(args)


if __name__ == "__main__":
    main()
