"""Fault campaign: kill -9 at random moments, byte flips in bank chunks, concurrent writers, a full disk.

    python benchmarks/faults.py                      # 20 kills, 10 flips, 2-4 writers, tmpfs if root
    python benchmarks/faults.py --kills 3 --flips 3  # quick

On a tiny synthetic workspace (4 videos x 12 s, prepared once with the plain stage runner), the
reference run is extract -> train (linear) -> evaluate in one process. Then:

* kills: the same three stages in a subprocess, SIGKILLed at a random moment of the reference run's
  duration, then run again to completion; the bank must equal the reference bit for bit, the head's
  weights and its frame-mAP too, and no video may be computed twice (duplicate work);
* flips: random bytes of random chunk files of a copy of the reference bank are overwritten;
  `stad bank verify` must report the bank damaged (corruptions detected / injected);
* writers: 2-4 extract processes at once on one workspace; each video computed once, bank identical;
* full disk: the workspace on a small tmpfs (needs root and mount; skipped otherwise): the run must
  fail with a clear error, keep what it completed, and finish once space is back.

Prints one table: runs, faults injected, outputs identical to the reference, corruptions detected /
injected, duplicate work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The three stages after finetune, in one process, printing each stage's counts as JSON lines.
RUN = """
import json, sys
from stad_core.stage_configs import demo_config
from storage.stages.runner import run_stage
cfg = json.loads(sys.argv[2])
from stad_core.extract import ExtractConfig
from stad_core.train import TrainConfig
ex = run_stage("extract", ExtractConfig(**cfg["extract"]), sys.argv[1])
print(json.dumps({"extract": ex.counts, "extract_reused": ex.reused}), flush=True)
tr = run_stage("train", TrainConfig(**cfg["train"]), sys.argv[1])
print(json.dumps({"train": tr.counts}), flush=True)
ev = run_stage("evaluate", demo_config().evaluate.model_copy(update={"plots": False}), sys.argv[1],
               upstream={"model": tr})
print(json.dumps({"evaluate": ev.counts, "summary": ev.uri}), flush=True)
"""


def _configs() -> dict[str, Any]:
    from stad_core.stage_configs import demo_config

    config = demo_config("tiny", videos=4, seconds=12)
    return {
        "config": config,
        "run": {"extract": config.extract.model_copy(update={"num_frames": 16, "batch_size": 2}).model_dump(mode="json"),
                "train": config.train.model_copy(update={"head": "linear", "epochs": 2}).model_dump(mode="json")},
    }


def prepare(base: Path) -> dict[str, Any]:
    """synth -> ingest -> detect -> finetune (random weights) in ``base``."""
    from storage.stages.runner import run_stage

    configs = _configs()
    config = configs["config"]
    synth = run_stage("synth", config.synth, base)
    ingest = run_stage("ingest", config.ingest, base, upstream={"synth": synth})
    run_stage("detect", config.detect, base, upstream={"ingest": ingest})
    run_stage("finetune", config.finetune.model_copy(update={"train": None}), base, upstream={"ingest": ingest})
    return configs["run"]


def _run(ws: Path, run_cfg: dict[str, Any], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", RUN, str(ws), json.dumps(run_cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _lines(out: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("{"):
            merged.update(json.loads(line))
    return merged


def fingerprint(ws: Path) -> dict[str, str]:
    """sha256 of every bank video's features, of the head's weights, and the frame-mAP."""
    import torch

    from storage import open_reader

    out: dict[str, str] = {}
    [bank_uri] = [str(p) for p in ws.glob("extract/*/long_term.zarr")]
    bank = open_reader(bank_uri)
    for video in bank.videos():
        out[f"bank:{video}"] = hashlib.sha256(bank.read_video(video).features.tobytes()).hexdigest()[:16]
    [ckpt] = list(ws.glob("train/*/checkpoint.pt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    weights = state.get("head") or state.get("model") or state
    digest = hashlib.sha256()
    for name, value in sorted(weights.items()) if isinstance(weights, dict) else []:
        if hasattr(value, "numpy"):
            digest.update(name.encode() + value.numpy().tobytes())
    out["head"] = digest.hexdigest()[:16]
    [summary] = list(ws.glob("evaluate/*/summary.json"))
    out["mAP"] = repr(json.loads(summary.read_text())["mAP"])
    return out


def kills(base: Path, run_cfg: dict[str, Any], reference: dict[str, str], seconds: float, n: int,
          env: dict[str, str], rng: random.Random, work: Path) -> dict[str, int]:
    identical = duplicates = 0
    for i in range(n):
        ws = work / f"kill{i}"
        shutil.copytree(base, ws)
        proc = _run(ws, run_cfg, env)
        time.sleep(rng.uniform(0.2, seconds))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        done_before = len(list(ws.glob("extract/*/_done/*.json")))
        again = _run(ws, run_cfg, env)
        out, err = again.communicate(timeout=900)
        if again.returncode != 0:
            print(f"  kill {i}: the re-run failed:\n{err[-2000:]}")
            continue
        lines = _lines(out)
        ran = 0 if lines["extract_reused"] else lines["extract"].get("ran", 0)  # a reused stage computed nothing
        duplicates += max(0, ran - (4 - done_before))
        same = fingerprint(ws) == reference
        identical += same
        print(f"  kill {i}: after {done_before}/4 videos; re-run computed {ran}; identical: {same}", flush=True)
        shutil.rmtree(ws)
    return {"runs": n, "faults": n, "identical": identical, "duplicates": duplicates}


def flips(reference_ws: Path, n: int, rng: random.Random, work: Path) -> dict[str, int]:
    detected = 0
    for i in range(n):
        ws = work / f"flip{i}"
        shutil.copytree(reference_ws, ws)
        [bank] = list(ws.glob("extract/*/long_term.zarr"))
        chunks = [p for p in bank.rglob("*") if p.is_file() and "/c/" in str(p) and "features" in str(p)]
        target = rng.choice(chunks)
        data = bytearray(target.read_bytes())
        at = rng.randrange(len(data))
        for j in range(at, min(len(data), at + 21)):  # 21 bytes, as in the report
            data[j] ^= 0xFF
        target.write_bytes(bytes(data))
        verify = subprocess.run([sys.executable, "-m", "flows.cli", "bank", "verify", str(bank)], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        video = target.relative_to(bank).parts[1]  # videos/<id>/v<n>/features/c/...
        said = verify.stdout + verify.stderr
        hit = verify.returncode != 0 and video in said and "features" in said
        detected += hit
        print(f"  flip {i}: {target.relative_to(bank)} byte {at}: verify {'named it' if hit else 'MISSED it'}",
              flush=True)
        shutil.rmtree(ws)
    return {"runs": n, "faults": n, "identical": 0, "detected": detected}


def writers(base: Path, run_cfg: dict[str, Any], reference: dict[str, str], env: dict[str, str],
            work: Path) -> dict[str, int]:
    identical = duplicates = 0
    for count in (2, 3, 4):
        ws = work / f"writers{count}"
        shutil.copytree(base, ws)
        script = ("import json,sys;from stad_core.extract import ExtractConfig;"
                  "from storage.stages.runner import run_stage;"
                  "print(json.dumps(run_stage('extract',ExtractConfig(**json.loads(sys.argv[2])),sys.argv[1]).counts))")
        procs = [subprocess.Popen([sys.executable, "-c", script, str(ws), json.dumps(run_cfg["extract"])], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(count)]
        ran = 0
        for proc in procs:
            out, err = proc.communicate(timeout=900)
            if proc.returncode != 0:
                print(f"  a writer failed:\n{err[-2000:]}", flush=True)
                continue
            ran += json.loads(out.strip().splitlines()[-1])["ran"]
        duplicates += max(0, ran - 4)
        # Finish the rest of the chain once, then compare everything.
        _run(ws, run_cfg, env).communicate(timeout=900)
        same = fingerprint(ws) == reference
        identical += same
        print(f"  {count} writers: {ran} video computations for 4 videos; identical: {same}", flush=True)
        shutil.rmtree(ws)
    return {"runs": 3, "faults": 3, "identical": identical, "duplicates": duplicates}


def full_disk(base: Path, run_cfg: dict[str, Any], reference: dict[str, str], env: dict[str, str],
              work: Path) -> dict[str, int] | str:
    mount = work / "tmpfs"
    mount.mkdir()
    size = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size + (256 << 10)}", "tmpfs", str(mount)],
                           capture_output=True, text=True)
    if tried.returncode != 0:
        return f"skipped: cannot mount a tmpfs here ({tried.stderr.strip() or tried.returncode})"
    try:
        ws = mount / "ws"
        shutil.copytree(base, ws)
        proc = _run(ws, run_cfg, env)
        _, err = proc.communicate(timeout=900)
        clear = proc.returncode != 0 and ("No space left" in err or "ENOSPC" in err or "error" in err.lower())
        subprocess.run(["mount", "-o", f"remount,size={size * 8 + (64 << 20)}", str(mount)], check=True)
        again = _run(ws, run_cfg, env)
        again.communicate(timeout=900)
        same = again.returncode == 0 and fingerprint(ws) == reference
        print(f"  full disk: first run failed cleanly: {clear}; after space came back identical: {same}", flush=True)
        return {"runs": 1, "faults": 1, "identical": int(same), "duplicates": 0}
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--flips", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="stad-faults-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STAD_GPUS": "0"}
    base = work / "base"
    run_cfg = prepare(base)
    reference_ws = work / "reference"
    shutil.copytree(base, reference_ws)
    started = time.perf_counter()
    out, err = _run(reference_ws, run_cfg, env).communicate(timeout=900)
    seconds = time.perf_counter() - started
    reference = fingerprint(reference_ws)
    print(f"reference run: {seconds:.1f} s (extract -> train -> evaluate), mAP {reference['mAP']}", flush=True)

    rows = {"kill -9": kills(base, run_cfg, reference, seconds, args.kills, env, rng, work),
            "byte flips": flips(reference_ws, args.flips, rng, work),
            "concurrent writers": writers(base, run_cfg, reference, env, work)}
    disk = full_disk(base, run_cfg, reference, env, work)
    print(f"\n{'fault':20s} {'runs':>5s} {'faults':>7s} {'identical':>10s} {'detected':>9s} {'duplicates':>11s}")
    for name, r in rows.items():
        detected = f"{r['detected']}/{r['faults']}" if "detected" in r else "-"
        identical = f"{r['identical']}/{r['runs']}" if "detected" not in r else "-"
        print(f"{name:20s} {r['runs']:5d} {r['faults']:7d} {identical:>10s} {detected:>9s} {r.get('duplicates', 0):11d}")
    if isinstance(disk, str):
        print(f"{'full disk':20s} {disk}")
    else:
        identical = f"{disk['identical']}/{disk['runs']}"
        print(f"{'full disk':20s} {disk['runs']:5d} {disk['faults']:7d} {identical:>10s} {'-':>9s} {0:11d}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
