"""Relation-head benchmark: every head x several seeds on the synthetic dataset's banks.

    python benchmarks/heads.py                        # default: the demo's recipe, every head, seeds 0 1 2
    python benchmarks/heads.py --work demo-data       # the same on a `stad demo` workspace (its banks reused)
    python benchmarks/heads.py --recipe large         # 64 videos, 16x1 clips, longer fine-tuning (~1 h)
    # the same, one process per seed (1 torch thread each), then the pooled table:
    for s in 0 1 2; do python benchmarks/heads.py --seeds $s --json s$s.json & done; wait
    python benchmarks/heads.py --merge s0.json s1.json s2.json
    python benchmarks/heads.py --work /tmp/qwork --quick   # small, fast

Banks: the project's own stages, run in plain Python (``storage.stages.runner.run_stage``) in the
workspace ``--work`` (complete outputs are reused): synth -> ingest -> detect (ground-truth boxes) ->
finetune (a tiny SlowFast) -> extract (zarr long-term bank, a row per actor and annotated second, and
context bank, a pooled map per keyframe). Then each head is trained with ``stad_core.train.Trainer``
(ACFB: per seed, the trained ACAR head of that seed writes an actor-context bank first and ACFB starts
from its weights) and scored on the val split with the project's frame-mAP evaluator.

Printed: val frame-mAP (all classes, and the label map's groups short_term / relational / long_term,
plus the two long-term classes) as mean +- std [min, max] over seeds; training throughput (keyframe
clips/s, and actors/s); the per-stage wall times; and a check of the papers' claims, where "clearly"
means the seed ranges do not overlap (worst seed of the better head > best seed of the other).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stad_core.ava import LabelMap  # noqa: E402
from stad_core.ava.keys import KeyframeKey  # noqa: E402
from stad_core.ava.table import AvaTable  # noqa: E402
from stad_core.banks import BankSpec  # noqa: E402
from stad_core.evaluation.claims import check_claims  # noqa: E402
from stad_core.extract import ExtractConfig  # noqa: E402
from stad_core.finetune import FinetuneConfig  # noqa: E402
from stad_core.heads import HEAD_VARIANTS, build_head, variant_fields  # noqa: E402
from stad_core.stage_configs import demo_config  # noqa: E402
from stad_core.train import (  # noqa: E402
    BankSet,
    ClassSpace,
    TrainConfig,
    Trainer,
    evaluate_predictions,
    infer_actor_context,
    predict,
)

GROUPS = ("short_term", "relational", "long_term")


@dataclass
class Chain:
    """What the heads are trained and scored on: the dataset's ground truth and one bank set
    (every video; the ground truth of each split picks its keyframes)."""

    label_map: LabelMap
    train: AvaTable
    val: AvaTable
    exclusions: set[KeyframeKey]
    banks: BankSet
    feature_dim: int
    context_dim: int
    context_grid: int
    timings: dict[str, float]


def build_chain(args: argparse.Namespace, frames: int, stride: int) -> Chain:
    """Run (or reuse) synth -> ingest -> detect -> finetune -> extract in the workspace ``args.work``."""
    from stad_core.ingest import IngestConfig
    from stad_core.stage_configs import DetectStageConfig, FinetuneStageConfig
    from stad_core.synth import preset_config
    from storage import open_reader
    from storage.stages.extract import bank_uris
    from storage.stages.runner import run_stage
    from storage.stages.train import load_dataset

    ws = str(args.work)
    timings: dict[str, float] = {}

    def stage(name: str, config: Any, **upstream: Any) -> Any:
        start = time.perf_counter()
        ref = run_stage(name, config, ws, upstream=upstream, force=name == "extract" and args.re_extract)
        timings[name] = time.perf_counter() - start
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {'reused' if ref.reused else 'ran'} {ref.counts}", flush=True)
        return ref

    if args.recipe == "demo":  # exactly the `stad demo` stages (so its workspace is reused when given)
        demo = demo_config(videos=args.videos)
        synth = stage("synth", demo.synth)
        ingest = stage("ingest", demo.ingest, synth=synth)
        detect = stage("detect", demo.detect, ingest=ingest)
        finetune = stage("finetune", demo.finetune, ingest=ingest)
        grid = demo.extract.context_grid
        extract = stage("extract", demo.extract, ingest=ingest, detect=detect, finetune=finetune)
    else:
        synth = stage("synth", preset_config("demo", {"videos": args.videos, "seconds": 60, "seed": 0,
                                                      "keyframe_margin": args.keyframe_margin}))
        ingest = stage("ingest", IngestConfig(verify_decode=False), synth=synth)
        detect = stage("detect", DetectStageConfig(source="groundtruth"), ingest=ingest)
        finetune = stage("finetune", FinetuneStageConfig(
            width=8, blocks=(1, 1, 1, 1), max_clips=args.ft_max_clips, first_videos=args.ft_videos,
            train=FinetuneConfig(num_frames=frames, stride=stride, short_side=None, epochs=args.ft_epochs,
                                 batch_size=8, lr=0.05, warmup_steps=20, box_jitter=0.05, hflip=True, seed=0)),
            ingest=ingest)
        grid = 8
        extract = stage("extract", ExtractConfig(num_frames=frames, stride=stride, short_side=None, context_grid=grid,
                                                 batch_size=8, num_workers=0, dtype="float16"),
                        ingest=ingest, detect=detect, finetune=finetune)
    data = load_dataset(ingest, "the heads benchmark")
    uris = bank_uris(extract)
    banks = BankSet(open_reader(uris["long_term"], cache_bytes=256 << 20),
                    open_reader(uris["context"], cache_bytes=256 << 20))
    return Chain(data.labelmap, data.trainable("train"), data.groundtruth("val"), data.exclusions, banks,
                 banks.actors.spec.feature_dim, banks.context.spec.feature_dim, grid, timings)


@dataclass
class RunResult:
    head: str
    seed: int
    groups: dict[str, float]
    per_class: dict[str, float]
    train_seconds: float
    clips: int
    actors: int
    state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.train_seconds

    @property
    def actors_per_s(self) -> float:
        return self.actors / self.train_seconds


def base_config(args: argparse.Namespace, chain: Chain) -> dict[str, Any]:
    """TrainConfig fields shared by every head (small dims for the tiny backbone)."""
    return dict(
        num_classes=len(chain.label_map.ids), actor_dim=chain.feature_dim, context_dim=chain.context_dim,
        long_term_dim=chain.feature_dim, latent_dim=args.latent, reduced_dim=args.latent, relation_dim=args.latent,
        norm_groups=min(32, args.latent // 4), optimizer="adamw", lr=args.lr, weight_decay=1e-4,
        schedule="cosine", warmup_epochs=0.5, epochs=args.epochs, batch_size=args.batch_size,
        window_width=args.window, window_per_second=args.per_second,
    ) | dict(kv.split("=", 1) for kv in args.set)  # TrainConfig validates and converts the strings


def _val_keyframes(chain: Chain) -> list[KeyframeKey]:
    gt = chain.val
    kv, kt, _ = gt.keyframe_groups()
    return [KeyframeKey.at(gt.videos[i], t) for i, t in zip(kv.tolist(), kt.tolist())]


def train_and_score(
    name: str, seed: int, args: argparse.Namespace, chain: Chain, classes: ClassSpace,
    banks: BankSet, *, actor_context_dim: int | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> RunResult:
    fields = {**base_config(args, chain), **variant_fields(name), "seed": seed}
    if actor_context_dim is not None:
        fields["actor_context_dim"] = actor_context_dim
    config = TrainConfig(**fields)
    trainer = Trainer(config, banks, chain.train, classes)
    if init_state is not None:
        trainer.head.load_acar_state_dict(init_state)  # ACFB starts from the trained ACAR head
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    preds = predict(trainer.head, banks, trainer.loss, classes, window_width=config.window_width,
                    window_per_second=config.window_per_second, keyframes=_val_keyframes(chain),
                    batch_size=config.batch_size)
    result = evaluate_predictions(preds, chain.val, chain.label_map, exclusions=chain.exclusions)
    groups = {"all": float(result.mAP)} | {g: float(v) for g, (_, v) in result.groups.items()}
    names = chain.label_map.names if hasattr(chain.label_map, "names") else {}
    per_class = {str(names.get(c.id, c.id)): float(c.ap) for c in result.classes}
    actors = sum(len(s.rows) for s in trainer.samples)
    state = {k: v.detach().clone() for k, v in trainer.head.state_dict().items()}
    return RunResult(name, seed, groups, per_class, seconds, len(trainer.samples) * config.epochs,
                     actors * config.epochs, state)


def actor_context_bank(acar: RunResult, args: argparse.Namespace, chain: Chain, work: Path) -> tuple[Any, float]:
    """Run the trained ACAR head over every video and store its actor-context rows in a zarr bank."""
    from dataclasses import replace

    from storage import open_bank

    # the same TrainConfig the ACAR run had (``--set`` fields included), so its weights fit
    head = build_head(TrainConfig(**{**base_config(args, chain), **variant_fields("acar"), "seed": acar.seed}))
    head.load_state_dict(acar.state)
    digest = __import__("hashlib").sha256(b"".join(v.numpy().tobytes() for v in acar.state.values())).hexdigest()
    lt_spec = chain.banks.actors.spec
    spec = BankSpec(kind="actor_context", feature_dim=args.latent, dtype=lt_spec.dtype, backbone=f"acar:{lt_spec.backbone}",
                    checkpoint_sha256=digest, clip_num_frames=lt_spec.clip_num_frames, clip_stride=lt_spec.clip_stride)
    start = time.perf_counter()
    uri = str(work / "heads-benchmark-acfb" / f"seed{acar.seed}_{digest[:8]}")
    bank = open_bank(uri, "a", spec)
    for video, rows in infer_actor_context(head, BankSet(chain.banks.actors, chain.banks.context), batch_size=32):
        if not bank.is_complete(video):  # the bank stores its spec's dtype; the head computes in float32
            bank.write_video(video, replace(rows, features=rows.features.astype(spec.numpy_dtype)))
    return open_bank(uri, "r"), time.perf_counter() - start


def summarise(values: Sequence[float]) -> str:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "n/a"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{100 * statistics.mean(vals):5.1f}±{100 * sd:3.1f} [{100 * min(vals):4.1f},{100 * max(vals):4.1f}]"


def print_table(results: dict[str, list[RunResult]], long_classes: Sequence[str]) -> None:
    cols = ["all", *GROUPS, *long_classes]
    header = f"{'head':8s} " + " ".join(f"{c:>24s}" for c in cols) + f" {'clips/s':>8s} {'actors/s':>9s}"
    print("\nval frame-mAP (%), mean±std [min,max] over seeds; training throughput")
    print(header)
    print("-" * len(header))
    for name, runs in results.items():
        cells = []
        for c in cols:
            vals = [r.groups[c] if c in r.groups else r.per_class.get(c, float("nan")) for r in runs]
            cells.append(f"{summarise(vals):>24s}")
        cps = statistics.mean(r.clips_per_s for r in runs)
        aps = statistics.mean(r.actors_per_s for r in runs)
        print(f"{name:8s} " + " ".join(cells) + f" {cps:8.1f} {aps:9.1f}")


def print_claims(results: dict[str, list[RunResult]]) -> None:
    """The issue's claims (``stad_core.evaluation.claims``): a verdict and margin per claim."""
    seeds = {name: [r.groups for r in sorted(runs, key=lambda r: r.seed)] for name, runs in results.items() if runs}
    print("\nclaims (holds = mean margin > 0 and beyond 2 std of the per-seed margins; AP points):")
    for claim in check_claims(seeds):
        print(f"  {claim.line()}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/stad_heads_bench/ws"),
                   help="workspace of the stages (complete outputs are reused)")
    p.add_argument("--recipe", choices=["demo", "large"], default="demo",
                   help="demo: the `stad demo` dataset, backbone and head settings, 3 seeds (~10 min); large: "
                        "64 videos, 16x1 clips, 5 fine-tuning epochs on 24 videos (~1 h)")
    p.add_argument("--quick", action="store_true", help="large recipe, small: short fine-tuning, 1 seed, few epochs")
    p.add_argument("--videos", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--heads", nargs="+", default=list(HEAD_VARIANTS), choices=list(HEAD_VARIANTS))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="head learning rate (demo recipe: the demo's; else 1e-3)")
    p.add_argument("--latent", type=int, default=64, help="latent/reduced/relation dims of the heads")
    p.add_argument("--window", type=int, default=60, help="long-term window width in seconds")
    p.add_argument("--per-second", type=int, default=5, help="long-term rows per second")
    p.add_argument("--clip", default="16x1", help="clip sampling FRAMESxSTRIDE (10 fps: 8x2 and 16x1 are 1.6 s)")
    p.add_argument("--keyframe-margin", type=int, default=1, help="synthetic dataset's keyframe_margin")
    p.add_argument("--ft-epochs", type=int, default=None, help="backbone fine-tuning epochs (default 5; quick 1)")
    p.add_argument("--ft-videos", type=int, default=None,
                   help="fine-tune the backbone on the training keyframes of the first N videos only (default 24)")
    p.add_argument("--ft-max-clips", type=int, default=None,
                   help="fine-tune on this many training keyframes, evenly picked (default: all; quick 96)")
    p.add_argument("--acfb-init", choices=["acar", "scratch"], default="acar",
                   help="ACFB starts from that seed's trained ACAR head, or from scratch")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="extra TrainConfig fields for every head (e.g. actor_location=false)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 was fastest on the shared 2-core machine)")
    p.add_argument("--re-extract", action="store_true", help="re-run extraction (resumes per video by input hash)")
    p.add_argument("--json", type=Path, default=None, help="also write every run's numbers here")
    p.add_argument("--merge", type=Path, nargs="+", default=None,
                   help="only print the table of earlier --json files (e.g. one process per seed)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.merge:
        return merge(args.merge)

    quick = args.quick
    if quick:
        args.recipe = "large"
    args.seeds = args.seeds or ([0] if quick else [0, 1, 2])
    if args.recipe == "demo":  # the demo's dataset size and head settings unless given
        demo = demo_config()
        args.epochs = args.epochs or demo.train.epochs
        args.videos = args.videos or demo.synth.videos
        args.clip = f"{demo.extract.num_frames}x{demo.extract.stride}"
        args.lr = args.lr or demo.train.lr
        # the demo's head recipe (standardised rows, no classifier dropout) unless --set says otherwise
        given = {kv.split("=", 1)[0] for kv in args.set}
        args.set = [f"{k}={getattr(demo.train, k)}" for k in ("input_norm", "dropout") if k not in given] + args.set
    args.lr = args.lr or 1e-3
    args.epochs = args.epochs or (3 if quick else 8)
    frames, stride = (int(x) for x in args.clip.split("x"))
    args.videos = args.videos or (8 if quick else 64)
    args.ft_epochs = args.ft_epochs or (1 if quick else 5)
    args.ft_max_clips = args.ft_max_clips if args.ft_max_clips is not None else (96 if quick else None)
    args.ft_videos = args.ft_videos if args.ft_videos is not None else (None if quick else 24)
    wall = time.perf_counter()
    chain = build_chain(args, frames, stride)
    classes = ClassSpace.from_label_map(chain.label_map)
    names = getattr(chain.label_map, "names", {})
    long_classes = [str(names.get(i, i)) for i, t in chain.label_map.label_types.items() if t == "LONG_TERM"]

    results: dict[str, list[RunResult]] = {h: [] for h in args.heads}
    stage_times: dict[str, float] = dict(chain.timings)
    heads = list(args.heads)
    if "acfb" in heads and "acar" not in heads:
        heads.insert(heads.index("acfb"), "acar")
        results = {h: [] for h in heads}
    for seed in args.seeds:
        for name in heads:
            t0 = time.perf_counter()
            if name == "acfb":
                acar = next(r for r in results["acar"] if r.seed == seed)
                ac_bank, sec = actor_context_bank(acar, args, chain, args.work)
                stage_times["acfb_bank"] = stage_times.get("acfb_bank", 0.0) + sec
                run = train_and_score(name, seed, args, chain, classes,
                                      BankSet(chain.banks.actors, chain.banks.context, ac_bank),
                                      actor_context_dim=args.latent,
                                      init_state=acar.state if args.acfb_init == "acar" else None)
            else:
                run = train_and_score(name, seed, args, chain, classes, chain.banks)
            results[name].append(run)
            stage_times[f"heads:{name}"] = stage_times.get(f"heads:{name}", 0.0) + time.perf_counter() - t0
            g = run.groups
            print(f"[{time.strftime('%H:%M:%S')}] {name:8s} seed {seed}: all {100 * g['all']:.1f} "
                  + " ".join(f"{k} {100 * g.get(k, float('nan')):.1f}" for k in GROUPS)
                  + " | " + " ".join(f"{c} {100 * run.per_class.get(c, float('nan')):.1f}" for c in long_classes)
                  + f" | {run.clips_per_s:.0f} clips/s", flush=True)
            dump(args.json, results, stage_times)

    actors = chain.banks.actors
    n_rows = sum(len(actors.read_video(v)) for v in actors.videos())
    print(f"\ndataset: {args.videos} videos x 60 s in {args.work}; bank: {n_rows} rows over {len(actors.videos())} videos "
          f"(dim {chain.feature_dim}, context {chain.context_dim}x{chain.context_grid}x{chain.context_grid})")
    print(f"heads: latent {args.latent}, AdamW lr {args.lr}, {args.epochs} epochs, batch {args.batch_size}, "
          f"window {args.window}s x {args.per_second}/s, seeds {args.seeds}, torch threads {args.threads}")
    print_table(results, long_classes)
    print("\nstage wall times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stage_times.items()))
    print(f"total wall time: {time.perf_counter() - wall:.1f} s")
    print_claims(results)
    dump(args.json, results, stage_times)
    return 0


def merge(paths: Sequence[Path]) -> int:
    """Print the table and claims of runs saved by ``--json`` (several files: their runs are pooled)."""
    results: dict[str, list[RunResult]] = {}
    stage_times: dict[str, float] = {}
    for path in paths:
        data = json.loads(path.read_text())
        for name, value in data.items():
            if name == "stage_times":
                for k, v in value.items():
                    stage_times[k] = stage_times.get(k, 0.0) + v
                continue
            have = {r.seed for r in results.get(name, [])}  # a (head, seed) run counts once
            results.setdefault(name, []).extend(
                RunResult(name, r["seed"], r["groups"], r["per_class"], r["train_seconds"], r["clips"], r["actors"])
                for r in value if r["seed"] not in have
            )
    results = {n: sorted(rs, key=lambda r: r.seed) for n, rs in results.items() if rs}
    long_classes = sorted({c for rs in results.values() for r in rs for c in r.per_class} & {"has_key", "alerted"})
    print(f"merged {len(paths)} file(s): seeds " + ", ".join(f"{n} {[r.seed for r in rs]}" for n, rs in results.items()))
    print_table(results, long_classes)
    print("\nstage wall times summed over files (s): " + ", ".join(f"{k} {v:.1f}" for k, v in stage_times.items()))
    print_claims(results)
    return 0


def dump(path: Path | None, results: dict[str, list[RunResult]], stage_times: dict[str, float]) -> None:
    """Every finished run's numbers as JSON (rewritten after each run, so a cut-off sweep keeps them)."""
    if path is None:
        return
    path.write_text(json.dumps({
        name: [{"seed": r.seed, "groups": r.groups, "per_class": r.per_class, "train_seconds": r.train_seconds,
                "clips": r.clips, "actors": r.actors} for r in runs]
        for name, runs in results.items()
    } | {"stage_times": stage_times}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
