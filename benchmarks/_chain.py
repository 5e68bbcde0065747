"""The data chain behind ``benchmarks/heads.py``, in plain Python (no Prefect), cached under a work dir.

    synthetic dataset -> fine-tuned tiny SlowFast -> long-term + context banks (zarr, per split)

Every step skips itself when its output is already there:

* dataset: ``stad_core.synth.generate_dataset`` keeps an identical dataset;
* fine-tuning: ``<work>/backbone.pt`` (the finished weights; ``finetune.ckpt`` resumes a killed run);
* extraction: the zarr banks skip videos whose input hash (config + weights + boxes) is unchanged.

Boxes are the ground-truth boxes (the oracle setting of the papers). The synthetic dataset annotates
every second of ``[keyframe_margin, seconds - keyframe_margin]``, so a long-term bank built from its
keyframes holds a row per actor and second: the 60 s LFB window of a keyframe sees 10-30 s-away
content (the key pickup, the alarm flash).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stad_core.ava import KeyframeDetections, KeyframeKey, LabelMap, read_ava_csv, read_exclusions, read_labelmap
from stad_core.ava.table import AvaTable
from stad_core.banks import BankSpec, FeatureBankReader
from stad_core.extract import ExtractConfig, VideoJob, extract_features
from stad_core.finetune import ActorClassifier, FinetuneConfig, actor_samples, finetune_backbone
from stad_core.models.backbones import build_backbone
from stad_core.synth import SynthConfig, generate_dataset, preset_config

BACKBONE = "slowfast_r50"


@dataclass(frozen=True)
class ChainConfig:
    """Everything that defines the banks (dataset size, backbone knobs, clip sampling, fine-tuning)."""

    videos: int = 24
    seconds: int = 60
    synth_seed: int = 0
    keyframe_margin: int = 1  # first keyframe second; 1 (not the demo's 2) adds bank rows during early alarms
    width: int = 8  # tiny SlowFast: slow stem width 8 -> 256 + 32 = 288 channels
    blocks: tuple[int, int, int, int] = (1, 1, 1, 1)
    num_frames: int = 16  # 16 x 1 at 10 fps = 1.6 s (all frames: the Fast pathway sees every motion step)
    stride: int = 1
    context_grid: int = 8
    ft_epochs: int = 2
    ft_batch_size: int = 8
    ft_lr: float = 0.05
    ft_max_clips: int | None = None  # fine-tune on an even subset of the training keyframes (None: all)
    ft_seed: int = 0
    ft_videos: int | None = None  # fine-tune on the training keyframes of the first N videos only (None: all)

    def backbone_knobs(self) -> dict[str, object]:
        return {"width": self.width, "blocks": self.blocks}

    def finetune_config(self) -> FinetuneConfig:
        return FinetuneConfig(
            num_frames=self.num_frames, stride=self.stride, short_side=None, epochs=self.ft_epochs,
            batch_size=self.ft_batch_size, lr=self.ft_lr, warmup_steps=20, box_jitter=0.05, hflip=True,
            seed=self.ft_seed,
        )

    def extract_config(self) -> ExtractConfig:
        return ExtractConfig(
            num_frames=self.num_frames, stride=self.stride, short_side=None, context_grid=self.context_grid,
            batch_size=8, num_workers=0, dtype="float16",
        )

    def tag(self) -> str:
        """Short hash of the settings that change the banks (names the work sub-folder)."""
        fields: list[object] = [self.videos, self.seconds, self.synth_seed, self.width, self.blocks, self.num_frames,
                                self.stride, self.context_grid, self.ft_epochs, self.ft_batch_size, self.ft_lr,
                                self.ft_max_clips, self.ft_seed]
        if self.keyframe_margin != 2:  # (added later: the default keeps the caches made before it)
            fields.append(self.keyframe_margin)
        if self.ft_videos is not None:
            fields.append(["ft_videos", self.ft_videos])
        text = json.dumps(fields)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass
class Dataset:
    """The synthetic dataset's files, read once."""

    root: Path
    label_map: LabelMap
    train: AvaTable
    val: AvaTable
    exclusions: set[KeyframeKey]
    video_paths: dict[str, Path]


@dataclass
class SplitBanks:
    """The banks of one split: per-actor rows (long-term bank) and per-keyframe context maps."""

    actors: FeatureBankReader
    context: FeatureBankReader


@dataclass
class Chain:
    dataset: Dataset
    banks: dict[str, SplitBanks]
    feature_dim: int
    context_dim: int
    timings: dict[str, float] = field(default_factory=dict)


def _log(msg: str) -> None:
    print(f"[chain {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_dataset(root: Path, cfg: ChainConfig) -> Dataset:
    """Generate (or keep) the synthetic dataset at ``root`` and read its annotations."""
    synth: SynthConfig = preset_config("demo", {"videos": cfg.videos, "seconds": cfg.seconds, "seed": cfg.synth_seed,
                                                "keyframe_margin": cfg.keyframe_margin})
    generate_dataset(synth, root, workers=1)
    ann = root / "annotations"
    videos = {p.stem: p for p in sorted((root / "videos").glob("*.mp4"))}
    return Dataset(
        root,
        read_labelmap(ann / "label_map.pbtxt"),
        read_ava_csv(ann / "train.csv", kind="groundtruth"),
        read_ava_csv(ann / "val.csv", kind="groundtruth"),
        read_exclusions(ann / "exclusions.csv"),
        videos,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_backbone(ds: Dataset, work: Path, cfg: ChainConfig) -> tuple[torch.nn.Module, str]:
    """Fine-tune the tiny SlowFast on the training keyframes (GT boxes); returns (backbone, sha256)."""
    final = work / "backbone.pt"
    torch.manual_seed(cfg.ft_seed)
    model = ActorClassifier(build_backbone(BACKBONE, **cfg.backbone_knobs()), num_classes=len(ds.label_map.ids))
    if not final.is_file():
        samples = actor_samples(ds.train, {k: str(v) for k, v in ds.video_paths.items()}, list(ds.label_map.ids))
        if cfg.ft_videos is not None:  # a fixed backbone budget however many videos the heads get
            first = set(sorted(ds.video_paths)[: cfg.ft_videos])
            samples = [s for s in samples if s.video_id in first]
        if cfg.ft_max_clips is not None and len(samples) > cfg.ft_max_clips:
            pick = np.linspace(0, len(samples) - 1, cfg.ft_max_clips).round().astype(int)
            samples = [samples[i] for i in pick]
        _log(f"fine-tuning on {len(samples)} keyframe clips x {cfg.ft_epochs} epochs")
        last = [time.time()]

        def progress(done: int, total: int) -> None:
            if time.time() - last[0] > 30 or done == total:
                last[0] = time.time()
                _log(f"  fine-tune step {done}/{total}")

        result = finetune_backbone(model, samples, cfg.finetune_config(), checkpoint=work / "finetune.ckpt",
                                   on_progress=progress)
        _log(f"fine-tune loss per epoch: {[round(x, 4) for x in result.history]}")
        tmp = final.with_suffix(".tmp")
        torch.save(model.backbone.state_dict(), tmp)
        tmp.replace(final)
    backbone = model.backbone
    backbone.load_state_dict(torch.load(final, map_location="cpu", weights_only=True))
    return backbone.eval(), _sha256(final)


def _jobs(table: AvaTable, ds: Dataset) -> list[VideoJob]:
    """One extraction job per video: every annotated keyframe's distinct GT boxes and person ids."""
    per_key: dict[tuple[str, int], dict[int, np.ndarray]] = defaultdict(dict)
    for r in range(len(table)):
        vid = str(table.videos[table.video_index[r]])
        t = int(round(float(table.timestamp[r])))
        per_key[(vid, t)].setdefault(int(table.person_id[r]), table.boxes[r].astype(np.float32))
    by_video: dict[str, list[tuple[int, dict[int, np.ndarray]]]] = defaultdict(list)
    for (vid, t), people in sorted(per_key.items()):
        by_video[vid].append((t, people))
    jobs = []
    for vid, frames in sorted(by_video.items()):
        kfs, pids = [], {}
        for t, people in frames:
            ids = sorted(people)
            boxes = np.stack([people[i] for i in ids])
            kfs.append(KeyframeDetections(KeyframeKey(vid, t), boxes, np.ones(len(ids), np.float32), "gt"))
            pids[t] = np.asarray(ids, np.int64)
        jobs.append(VideoJob(vid, ds.video_paths[vid], kfs, pids))
    return jobs


def ensure_banks(
    ds: Dataset, backbone: torch.nn.Module, sha: str, work: Path, cfg: ChainConfig, *, force_extract: bool = False
) -> tuple[dict[str, SplitBanks], dict[str, float]]:
    """Extract (or resume) the long-term and context banks of both splits into zarr banks."""
    from storage import open_bank  # benchmarks may use storage; stad_core never does

    ecfg = cfg.extract_config()
    dim = backbone.out_channels
    common = dict(backbone=f"{BACKBONE}-w{cfg.width}-b{''.join(map(str, cfg.blocks))}", checkpoint_sha256=sha,
                  clip_num_frames=cfg.num_frames, clip_stride=cfg.stride, detector_source="gt", dtype="float16")
    lt_spec = BankSpec(kind="long_term", feature_dim=dim, **common)
    ctx_spec = BankSpec(kind="context", feature_dim=dim, context_grid=(cfg.context_grid, cfg.context_grid), **common)
    out: dict[str, SplitBanks] = {}
    timings: dict[str, float] = {}
    marker = work / "banks.done"
    # Our own cache key (chain settings via the folder, weights via sha): extraction's per-video input
    # hash also covers the extract module's config fields, so edits there would re-extract every rerun.
    done = marker.is_file() and json.loads(marker.read_text()).get("checkpoint_sha256") == sha
    for split, table in (("train", ds.train), ("val", ds.val)):
        lt_uri, ctx_uri = str(work / "banks" / f"{split}_long_term"), str(work / "banks" / f"{split}_context")
        if done and not force_extract:
            out[split] = SplitBanks(open_bank(lt_uri, "r", cache_bytes=256 << 20),
                                    open_bank(ctx_uri, "r", cache_bytes=256 << 20))
            continue
        lt, ctx = open_bank(lt_uri, "a", lt_spec), open_bank(ctx_uri, "a", ctx_spec)
        jobs = _jobs(table, ds)
        start = time.perf_counter()
        last = [time.time()]

        def progress(done: int, total: int, split: str = split) -> None:
            if time.time() - last[0] > 30 or done == total:
                last[0] = time.time()
                _log(f"  extract {split}: {done}/{total} videos")

        summary = extract_features(jobs, backbone, lt, ecfg, context_writer=ctx, on_progress=progress)
        timings[f"extract_{split}"] = time.perf_counter() - start
        _log(f"extract {split}: {len(summary.written)} written, {len(summary.skipped)} skipped, "
             f"{summary.clips} clips, {summary.rows} rows")
        out[split] = SplitBanks(open_bank(lt_uri, "r", cache_bytes=256 << 20), open_bank(ctx_uri, "r", cache_bytes=256 << 20))
    marker.write_text(json.dumps({"checkpoint_sha256": sha}))
    return out, timings


def build_chain(data: Path, work: Path, cfg: ChainConfig, *, force_extract: bool = False) -> Chain:
    """Run (or reuse) every step; returns the dataset, the banks and the step timings (seconds)."""
    work = work / cfg.tag()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ds = ensure_dataset(data, cfg)
    timings["dataset"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    backbone, sha = ensure_backbone(ds, work, cfg)
    timings["finetune"] = time.perf_counter() - t0
    banks, ext = ensure_banks(ds, backbone, sha, work, cfg, force_extract=force_extract)
    timings.update(ext)
    ctx_dim = banks["train"].context.spec.feature_dim
    return Chain(ds, banks, backbone.out_channels, ctx_dim, timings)
