"""Decode throughput of ``stad_core.video`` on real (and optionally a longer synthetic) H.264 video.

Measured side by side in one run, per video:

* ``index``       -- demuxing every packet to build the frame index (what ``probe`` costs)
* ``decode only`` -- sequential PyAV decode of every frame, no colour conversion (the floor)
* ``sequential``  -- every frame decoded and converted to RGB (``frames_at`` on all frames)
* ``clip x N``    -- one ``decode_clip`` (32x2) per keyframe second: a seek per clip
* ``clips pass``  -- ``decode_clips`` over the same keyframes: one forward pass, shared frames

Throughput is frames delivered per second (``T`` per clip), plus frames the decoder produced.
Usage: ``python benchmarks/decode.py [--data ../shared/data] [--synthetic-seconds 60] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from stad_core.video import VideoReader, clear_index_cache, probe, encode_video

ROOT = Path(__file__).resolve().parent.parent


def best_of(repeat: int, fn: Callable[[], tuple[int, int]]) -> tuple[float, int, int]:
    """Fastest wall time of ``repeat`` runs of ``fn`` -> (seconds, frames out, frames decoded)."""
    best = float("inf")
    out = (0, 0)
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, *out


def synthetic_video(path: Path, seconds: int, fps: int = 30) -> Path:
    """A moving gradient 340x256 (AVA-like size after resizing), keyframe every 2 s (x264 defaults
    to 10 s at most; YouTube-sourced AVA files are typically 2-5 s)."""
    h, w = 256, 340
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((seconds * fps, h, w, 3), dtype=np.uint8)
    for i in range(seconds * fps):
        frames[i, ..., 0] = (xx + 3 * i) % 256
        frames[i, ..., 1] = (yy + 2 * i) % 256
        frames[i, ..., 2] = ((xx + yy) // 2 + i) % 256
    return encode_video(path, frames, fps=fps, keyframe_interval=2 * fps, options={"preset": "veryfast"})


def measure(path: Path, repeat: int, threads: int, num_frames: int, stride: int) -> list[tuple[str, float, int, int]]:
    info = probe(path)
    keyframes = np.arange(1.0, np.floor(info.duration - 1e-9) + 1e-9)  # every whole second inside
    rows = []

    def index() -> tuple[int, int]:
        clear_index_cache()
        probe(path)
        return info.num_frames, 0

    def decode_only() -> tuple[int, int]:
        n = 0
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            s.codec_context.thread_count = threads
            for _ in c.decode(s):
                n += 1
        return n, n

    def sequential() -> tuple[int, int]:
        with VideoReader(path, threads=threads) as r:
            out = sum(1 for _ in r.iter_frames())
            return out, r.frames_decoded

    def clip_each() -> tuple[int, int]:
        out = decoded = 0
        for t in keyframes:
            with VideoReader(path, threads=threads) as r:
                out += r.clip(float(t), num_frames, stride).shape[0]
                decoded += r.frames_decoded
        return out, decoded

    def clips_pass() -> tuple[int, int]:
        with VideoReader(path, threads=threads) as r:
            out = sum(clip.shape[0] for _, clip in r.clips(keyframes, num_frames, stride))
            return out, r.frames_decoded

    def clips_pass_sparse() -> tuple[int, int]:
        with VideoReader(path, threads=threads) as r:
            out = sum(clip.shape[0] for _, clip in r.clips(keyframes[::5], num_frames, stride))
            return out, r.frames_decoded

    tag = f"{num_frames}x{stride}"
    for name, fn in [
        ("index (demux)", index),
        ("decode only", decode_only),
        ("sequential rgb", sequential),
        (f"clip {tag} x{len(keyframes)} (seek each)", clip_each),
        (f"clips {tag} x{len(keyframes)} (one pass)", clips_pass),
        (f"clips {tag} x{len(keyframes[::5])} every 5 s", clips_pass_sparse),
    ]:
        rows.append((name, *best_of(repeat, fn)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--synthetic-seconds", type=int, default=0, help="also a synthetic 30 fps video this long")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1], help="decoder threads (0 = auto)")
    parser.add_argument("--clip", type=int, nargs=2, default=[32, 2], metavar=("T", "TAU"))
    args = parser.parse_args()

    videos = sorted((args.data / "mmaction2").glob("*.mp4"))
    tmp = tempfile.TemporaryDirectory()
    if args.synthetic_seconds:
        videos.append(synthetic_video(Path(tmp.name) / f"synthetic_{args.synthetic_seconds}s.mp4", args.synthetic_seconds))
    if not videos:
        raise SystemExit(f"no videos found under {args.data}/mmaction2 (and no --synthetic-seconds)")

    print(f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}; best of {args.repeat}")
    for path in videos:
        info = probe(path)
        print(f"\n{path.name}: {info.codec} {info.width}x{info.height}, {info.fps:g} fps, "
              f"{info.num_frames} frames, {info.duration:g} s")
        for threads in args.threads:
            print(f"  threads={threads or 'auto'}")
            print(f"    {'':40s} {'seconds':>8s} {'frames out':>10s} {'out/s':>9s} {'decoded':>8s} {'decoded/s':>9s}")
            for name, seconds, out, decoded in measure(path, args.repeat, threads, *args.clip):
                print(f"    {name:40s} {seconds:8.3f} {out:10d} {out / seconds:9.0f} {decoded:8d} "
                      f"{(decoded / seconds if decoded else float('nan')):9.0f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
