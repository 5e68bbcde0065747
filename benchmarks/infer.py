"""`stad infer` time and peak memory against video length: memory must stay flat (streamed decoding,
keyframe batches, one frame at a time for the annotated MP4) while time grows with the video.

Builds the tests' tiny trained workspace (tests/infer_testlib.py: the demo's tiny SlowFast, a random
tiny detector, an LFB head), exports a bundle, renders synthetic videos of each length (an unseen
seed) and runs one `infer_video` per length in a fresh process, reporting its wall time and peak
resident memory (ru_maxrss).

    python benchmarks/infer.py [--seconds 30 120 480] [--work /tmp/stad-infer-bench]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[4]))
from storage.bundle import load_bundle
from storage.stages.infer import InferConfig, Models, infer_video
started = time.perf_counter()
r = infer_video(Models(load_bundle(sys.argv[1])), sys.argv[2], sys.argv[3], InferConfig(), force=True)
print(json.dumps({"seconds": time.perf_counter() - started, "keyframes": r.keyframes, "actors": r.actors,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, nargs="+", default=[30, 120, 480])
    parser.add_argument("--work", type=Path, default=Path("/tmp/stad-infer-bench"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from infer_testlib import build_trained_workspace, detector_config

    from stad_core.synth import SynthConfig
    from stad_core.synth.generate import render_video
    from storage.bundle import export_bundle

    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / "ws").is_dir():
        build_trained_workspace(args.work)
    bundle = export_bundle(args.work / "ws", args.work / "bundle", detector=detector_config(args.work / "detector.pt"))
    print(f"bundle {bundle.root} ({bundle.head_name}); {args.threads} torch threads")
    print(f"{'video s':>8} {'frames':>7} {'keyframes':>9} {'people':>7} {'infer s':>8} {'x realtime':>10} {'peak MiB':>9}")
    for seconds in args.seconds:
        video = args.work / f"video_{seconds}s.mp4"
        if not video.is_file():
            render_video(SynthConfig(videos=1, seconds=seconds, seed=7), 0, video)
        out = subprocess.run([sys.executable, "-c", CHILD, str(bundle.root), str(video), str(args.work / "out"),
                              str(args.threads)], capture_output=True, text=True, cwd=ROOT, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{seconds:>8} {seconds * 10:>7} {r['keyframes']:>9} {r['actors']:>7} {r['seconds']:>8.1f} "
              f"{seconds / r['seconds']:>10.2f} {r['peak_mib']:>9.0f}")


if __name__ == "__main__":
    main()
