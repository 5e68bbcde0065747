"""Backbones side by side: speed/memory/GFLOPs at full size, and frame-mAP of tiny versions.

``speed``: each backbone at its published size, in its own process (so peak memory is its own): one clip
(batch 1) of its usual frame count at ``--size`` pixels, ``--repeat`` timed forwards after a warm-up;
prints clips/s, the process's peak resident memory and GFLOPs per clip (FlopCounterMode on the meta
device: 2 FLOPs per multiply-add). ``--device cuda --amp`` adds GPU figures where there is one (bf16
autocast); nothing needs a GPU.

``quality``: tiny versions (``--width``) of each backbone, the same budget for each: fine-tuned
``--ft-epochs`` on ``--ft-clips`` training actors of the synthetic dataset, banks extracted, a linear
head trained ``--epochs``, frame-mAP@0.5 on val (ground-truth boxes). Small defaults: a few minutes.

    python benchmarks/backbones.py speed [--names x3d_s vit_b_videomae] [--size 224] [--threads 2]
    python benchmarks/backbones.py quality [--videos 6 --seconds 30 --ft-epochs 2 --epochs 6]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

SPEED_DEFAULT = ["slowfast_r50", "slowonly_r50_nl", "x3d_s", "x3d_m", "vit_b_videomae", "mvit_v2_b"]
# tiny sizes: about the same channel budget as the demo's SlowFast (width 8, one block per stage)
TINY: dict[str, dict[str, object]] = {
    "slowfast_r50": {"family": "mmaction2", "width": 8, "blocks": [1, 1, 1, 1]},
    "x3d_s": {"width": 8, "blocks": [1, 1, 1, 1]},
    "vit_b_videomae": {"width": 64},
    "mvit_v2_b": {"width": 8},
}


def _one_speed(name: str, size: int, repeat: int, threads: int, device: str, amp: bool) -> dict[str, object]:
    import torch

    from stad_core.models import build_backbone
    from stad_core.models.catalog import CARDS
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    frames = CARDS[name].sampling[0]
    with torch.device("meta"):
        meta = build_backbone(name).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            meta.forward_features(torch.zeros(1, 3, frames, size, size))
    model = build_backbone(name).eval().to(device)
    clip = torch.randint(0, 255, (1, 3, frames, size, size), dtype=torch.uint8, device=device)
    ctx = torch.autocast(device, dtype=torch.bfloat16) if amp else torch.autocast(device, enabled=False)
    times = []
    with torch.no_grad(), ctx:
        for i in range(repeat + 1):
            start = time.perf_counter()
            model(clip)
            if device == "cuda":
                torch.cuda.synchronize()
            if i:  # the first call warms up
                times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"name": name, "frames": frames, "size": size, "clips_per_s": 1 / min(times),
            "peak_mib": peak, "gflops": counter.get_total_flops() / 1e9, "device": device, "amp": amp}


def speed(args: argparse.Namespace) -> None:
    print(f"{'backbone':16s} {'clip':>12s} {'clips/s':>8s} {'peak MiB':>9s} {'GFLOPs':>8s}  ({args.device}, "
          f"{args.threads} threads{', bf16 autocast' if args.amp else ''})")
    for name in args.names or SPEED_DEFAULT:
        cmd = [sys.executable, __file__, "_speed_one", name, str(args.size), str(args.repeat), str(args.threads),
               args.device, str(int(args.amp))]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            print(f"{name:16s} failed: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:16s} {r['frames']:>3d}x{r['size']}x{r['size']:<4d} {r['clips_per_s']:8.2f} "
              f"{r['peak_mib']:9.0f} {r['gflops']:8.1f}", flush=True)


def quality(args: argparse.Namespace) -> None:
    import os

    os.environ.setdefault("STAD_GPUS", "0")
    from stad_core.heads.variants import variant_fields
    from stad_core.stage_configs import DetectStageConfig, EvaluateConfig, FinetuneStageConfig, demo_config
    from storage.stages.evaluate import read_summary
    from storage.stages.runner import run_stage

    ws = args.workspace or tempfile.mkdtemp(prefix="stad-backbones-")
    base = demo_config("demo", videos=args.videos, seconds=args.seconds)
    started = time.perf_counter()
    synth = run_stage("synth", base.synth, ws)
    ingest = run_stage("ingest", base.ingest, ws, upstream={"synth": synth})
    detect = run_stage("detect", DetectStageConfig(), ws, upstream={"ingest": ingest})
    print(f"dataset: {args.videos} videos x {args.seconds} s ({time.perf_counter() - started:.0f} s); "
          f"budget: fine-tune {args.ft_epochs} epochs on {args.ft_clips} actors, linear head {args.epochs} epochs")
    print(f"{'backbone':16s} {'channels':>8s} {'params':>8s} {'fine-tune s':>11s} {'frame-mAP':>9s}  tiny size")
    for name in args.names or list(TINY):
        values = {**base.finetune.model_dump(exclude_unset=True), "backbone": name, "max_clips": args.ft_clips,
                  **TINY[name]}
        for key in ("family", "blocks"):  # the demo's SlowFast settings that other backbones do not take
            if key not in TINY[name]:
                values.pop(key, None)
        values["train"] = {**values["train"], "epochs": args.ft_epochs, "num_frames": args.frames}
        config = FinetuneStageConfig.model_validate(values)
        t0 = time.perf_counter()
        finetune = run_stage("finetune", config, ws, upstream={"ingest": ingest})
        ft_s = time.perf_counter() - t0
        extract_cfg = base.extract.model_copy(update={"num_frames": args.frames})
        extract = run_stage("extract", extract_cfg, ws, upstream={"ingest": ingest, "detect": detect,
                                                                 "finetune": finetune})
        train_cfg = base.train.model_copy(update={"epochs": args.epochs, **variant_fields("linear")})
        model = run_stage("train", train_cfg, ws, upstream={"ingest": ingest, "extract": extract})
        result = run_stage("evaluate", EvaluateConfig(plots=False), ws,
                           upstream={"model": model, "ingest": ingest, "extract": extract})
        summary = read_summary(result)
        from storage.exports import load_backbone

        backbone, info = load_backbone(finetune.uri)
        params = sum(p.numel() for p in backbone.parameters())
        knobs = json.dumps(info["knobs"], separators=(",", ":"))
        print(f"{name:16s} {info['out_channels']:8d} {params / 1e6:7.2f}M {ft_s:11.0f} {100 * summary['mAP']:9.1f}  {knobs}",
              flush=True)
    print(f"total {time.perf_counter() - started:.0f} s; workspace {ws}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_speed_one":
        name, size, repeat, threads, device, amp = sys.argv[2:8]
        print(json.dumps(_one_speed(name, int(size), int(repeat), int(threads), device, bool(int(amp)))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["speed", "quality"])
    parser.add_argument("--names", nargs="*", default=None, help="backbones (default: a representative set)")
    parser.add_argument("--size", type=int, default=224, help="speed: clip height and width")
    parser.add_argument("--repeat", type=int, default=2, help="speed: timed forwards (best kept)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="speed: bf16 autocast")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--frames", type=int, default=8, help="quality: frames per clip (stride 2)")
    parser.add_argument("--ft-clips", type=int, default=96)
    parser.add_argument("--ft-epochs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--workspace", default=None)
    args = parser.parse_args()
    {"speed": speed, "quality": quality}[args.mode](args)


if __name__ == "__main__":
    main()
