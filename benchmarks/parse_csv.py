"""Parse (and write) speed of AVA CSVs: generates a seeded detection or ground-truth CSV and times
``read_ava_csv`` / ``write_ava_csv`` on it.

``read_ava_csv`` is the one AVA CSV reader (evaluation reads results files with it too); a clean
generated file takes its fast path (pyarrow), which is what this measures. ``--no-validate-boxes``
skips the box and score checks (evaluation checks them: its reading cost is the default's).

    python benchmarks/parse_csv.py                      # 1M detection rows
    python benchmarks/parse_csv.py --rows 11000000      # evaluation-sized results file
    python benchmarks/parse_csv.py --kind groundtruth --repeat 3

Prints rows, file size, best-of-N wall time, rows/s, process CPU time (summed over pyarrow's
threads; unlike wall time it does not grow when other jobs share the cores) and peak RSS. The file goes to
a temporary directory (or ``--out``) and is removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stad_core.ava import AvaTable, read_ava_csv, write_ava_csv


def make_table(rows: int, kind: str, seed: int) -> AvaTable:
    """AVA-shaped rows: ~300 videos, keyframes 902..1798, 3-decimal boxes, 1-based actions."""
    rng = np.random.default_rng(seed)
    n_videos = 300
    videos = np.array([f"v{rng.integers(1 << 40):011x}"[:11] for _ in range(n_videos)], dtype=object)
    videos = np.unique(videos)
    xy = np.round(rng.uniform(0, 0.5, size=(rows, 2)), 3)
    wh = np.round(rng.uniform(0.05, 0.5, size=(rows, 2)), 3)
    boxes = np.concatenate([xy, np.round(np.minimum(xy + wh, 1.0), 3)], axis=1)
    table = AvaTable(
        videos=videos,
        video_index=np.sort(rng.integers(0, len(videos), rows)).astype(np.int32),
        timestamp=rng.integers(902, 1799, rows).astype(np.float64),
        boxes=boxes,
        action_id=rng.integers(1, 81, rows).astype(np.int32),
        person_id=rng.integers(0, 20, rows).astype(np.int64) if kind == "groundtruth" else np.full(rows, -1, np.int64),
        score=np.round(rng.uniform(0, 1, rows), 6) if kind == "detections" else None,
        line=np.zeros(rows, np.int64),
    )
    return table


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=["detections", "groundtruth"], default="detections")
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many reads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the CSV here instead of a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the generated CSV")
    parser.add_argument("--no-validate-boxes", dest="validate_boxes", action="store_false",
                        help="skip the [0, 1] box and score checks (to see what they cost)")
    args = parser.parse_args(argv)

    tmpdir = tempfile.TemporaryDirectory(prefix="stad-bench-")
    path = args.out or Path(tmpdir.name) / f"bench_{args.kind}_{args.rows}.csv"
    table = make_table(args.rows, args.kind, args.seed)
    rss_before = peak_rss_mb()

    t0, c0 = time.perf_counter(), time.process_time()
    write_ava_csv(path, table)
    write_s, write_cpu = time.perf_counter() - t0, time.process_time() - c0
    size_mb = path.stat().st_size / 1e6
    del table

    times, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        read = read_ava_csv(path, kind=args.kind, validate_boxes=args.validate_boxes)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert len(read) == args.rows, (len(read), args.rows)
        del read
    best = min(times)
    print(f"rows            {args.rows:,} ({args.kind}, seed {args.seed})")
    print(f"file            {size_mb:,.1f} MB")
    print(f"write_ava_csv   {write_s:.2f} s  ({args.rows / write_s / 1e6:.2f} M rows/s, {write_cpu:.2f} s CPU)")
    print(f"read_ava_csv    best {best:.2f} s of {args.repeat} (all: {', '.join(f'{t:.2f}' for t in times)})"
          f"  ({args.rows / best / 1e6:.2f} M rows/s)")
    print(f"read CPU time   {min(cpu):.2f} s summed over threads (a shared machine inflates wall time, not this)")
    print(f"peak RSS        {peak_rss_mb():,.0f} MB (after generating the table: {rss_before:,.0f} MB)")
    if args.keep:
        print(f"kept            {path}")
    else:
        path.unlink(missing_ok=True)
    tmpdir.cleanup() if not args.keep else None
    sys.stdout.flush()


if __name__ == "__main__":
    main()
