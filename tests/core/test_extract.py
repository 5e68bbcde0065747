"""Extraction loop on a real video and on synthetic videos; resume skips complete videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stad_core.ava.keys import KeyframeKey
from stad_core.ava.proposals import KeyframeDetections
from stad_core.banks import BankError, BankSpec, DictBank
from stad_core.extract import ExtractConfig, VideoJob, extract_features
from stad_core.models.actor_features import context_maps, roi_actor_features
from stad_core.models.backbones import build_backbone
from stad_core.models.base import frames_to_clip
from stad_core.video import decode_clip, encode_video

# MMAction2 conventions (undilated res5): dilated 3D conv backward is slow on CPU.
TINY = dict(width=8, blocks=(1, 1, 1, 1), alpha=4, family="mmaction2")
CFG = ExtractConfig(num_frames=8, stride=2, short_side=48, batch_size=2, num_workers=0, dtype="float32")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone("slowfast_r50", **TINY).eval()


@pytest.fixture(scope="module")
def synthetic_videos(tmp_path_factory) -> list[Path]:
    """Three short videos of moving blocks (8 fps, 5 s, 64x48)."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    paths = []
    for v in range(3):
        frames = np.zeros((40, 48, 64, 3), np.uint8)
        for i in range(40):
            frames[i] = rng.integers(0, 40, (1, 1, 3), dtype=np.uint8)
            x = (i + 8 * v) % 48
            frames[i, 10:40, x:x + 14] = (200, 120 + v * 40, 60)
        paths.append(encode_video(root / f"v{v}.mp4", frames, fps=8))
    return paths


def _dets(video_id: str, seconds: list[int], n_boxes: list[int]) -> list[KeyframeDetections]:
    rng = np.random.default_rng(len(video_id))
    out = []
    for t, n in zip(seconds, n_boxes, strict=True):
        xy = rng.uniform(0.0, 0.5, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(0.2, 0.5, (n, 2))], axis=1).clip(0, 1)
        out.append(KeyframeDetections(KeyframeKey(video_id, t), boxes, rng.uniform(0.5, 1, n), "test"))
    return out


def _spec(dim: int, kind: str = "long_term", grid: tuple[int, int] | None = None, dtype: str = "float32") -> BankSpec:
    return BankSpec(kind=kind, feature_dim=dim, dtype=dtype, backbone="slowfast_r50-tiny",
                    checkpoint_sha256="0" * 64, context_grid=grid)


def _jobs(paths: list[Path]) -> list[VideoJob]:
    return [VideoJob(f"v{i}", p, _dets(f"v{i}", [1, 2, 3], [2, 0, 3] if i != 1 else [1, 1, 1]))
            for i, p in enumerate(paths)]


def test_extract_synthetic_matches_direct_computation(backbone, synthetic_videos) -> None:
    bank = DictBank(_spec(backbone.out_channels))
    ctx = DictBank(_spec(backbone.out_channels, "context", (2, 2)))
    cfg = CFG.model_copy(update={"context_grid": 2})
    jobs = _jobs(synthetic_videos)
    progress: list[tuple[int, int]] = []
    summary = extract_features(jobs, backbone, bank, cfg, context_writer=ctx,
                               on_progress=lambda d, t: progress.append((d, t)))
    assert summary.written == ["v0", "v1", "v2"] and summary.skipped == [] and summary.clips == 9
    assert progress[-1] == (3, 3)
    rows = bank.read_video("v0")
    assert rows.features.shape == (5, backbone.out_channels)
    assert rows.timestamps.tolist() == [1.0, 1.0, 3.0, 3.0, 3.0]
    assert (rows.person_ids == -1).all() and rows.source == "test"
    np.testing.assert_allclose(rows.boxes, np.concatenate([jobs[0].keyframes[0].boxes, jobs[0].keyframes[2].boxes]))
    # The same numbers computed by hand for keyframe 3 of v0.
    clip = frames_to_clip(decode_clip(synthetic_videos[0], 3.0, 8, 2, short_side=48))
    with torch.no_grad():
        maps = backbone(clip).maps
    want = roi_actor_features(maps, [torch.from_numpy(jobs[0].keyframes[2].boxes)], tuple(clip.shape[3:]))
    np.testing.assert_allclose(rows.features[2:], want.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ctx.context("v0", 3.0), context_maps(maps, 2)[0].numpy(), rtol=1e-4, atol=1e-5)
    assert ctx.context("v0", 2.0).shape == (backbone.out_channels, 2, 2)  # keyframe without actors too


def test_workers_give_the_same_rows(backbone, synthetic_videos) -> None:
    a, b = DictBank(_spec(backbone.out_channels)), DictBank(_spec(backbone.out_channels))
    extract_features(_jobs(synthetic_videos), backbone, a, CFG)
    extract_features(_jobs(synthetic_videos), backbone, b, CFG.model_copy(update={"num_workers": 2}))
    for vid in ("v0", "v1", "v2"):
        np.testing.assert_allclose(a.read_video(vid).features, b.read_video(vid).features, rtol=1e-5, atol=1e-6)


class _Killed(Exception):
    pass


class _DyingBank(DictBank):
    """Dies (like a killed process) on the n-th video write; counts every write."""

    def __init__(self, spec: BankSpec, die_at: int | None) -> None:
        super().__init__(spec)
        self.die_at = die_at
        self.writes: list[str] = []

    def write_video(self, video_id, rows, *, meta=None):  # noqa: ANN001
        if self.die_at is not None and len(self.writes) == self.die_at:
            raise _Killed(video_id)
        self.writes.append(video_id)
        super().write_video(video_id, rows, meta=meta)


def test_killed_extraction_resumes_without_redoing_complete_videos(backbone, synthetic_videos) -> None:
    bank = _DyingBank(_spec(backbone.out_channels), die_at=1)
    jobs = _jobs(synthetic_videos)
    with pytest.raises(_Killed):
        extract_features(jobs, backbone, bank, CFG)
    assert bank.videos() == ["v0"]
    bank.die_at = None
    summary = extract_features(jobs, backbone, bank, CFG)
    assert summary.skipped == ["v0"] and summary.written == ["v1", "v2"]
    assert bank.writes == ["v0", "v1", "v2"]  # v0 written once
    # A third run does nothing; new boxes for v2 redo v2 only.
    assert extract_features(jobs, backbone, bank, CFG).written == []
    jobs[2] = VideoJob("v2", synthetic_videos[2], _dets("v2x", [1, 2], [1, 1]))
    assert extract_features(jobs, backbone, bank, CFG).written == ["v2"]
    assert len(bank.read_video("v2")) == 2


def test_force_recomputes_complete_videos(backbone, synthetic_videos) -> None:
    bank = _DyingBank(_spec(backbone.out_channels), die_at=None)
    jobs = _jobs(synthetic_videos)
    extract_features(jobs, backbone, bank, CFG)
    assert extract_features(jobs, backbone, bank, CFG).skipped == ["v0", "v1", "v2"]
    before = bank.read_video("v1").features
    summary = extract_features(jobs, backbone, bank, CFG, force=True)
    assert summary.written == ["v0", "v1", "v2"] and summary.skipped == [] and summary.clips == 7
    assert bank.writes == ["v0", "v1", "v2"] * 2
    np.testing.assert_array_equal(bank.read_video("v1").features, before)  # same inputs, same rows


def test_rows_come_in_the_bank_dtype_and_a_config_mismatch_is_refused(backbone, synthetic_videos) -> None:
    jobs = _jobs(synthetic_videos)[:1]
    half = DictBank(_spec(backbone.out_channels, dtype="float16"))
    extract_features(jobs, backbone, half, CFG.model_copy(update={"dtype": "float16"}))
    assert half.read_video("v0").features.dtype == np.float16
    bank = _DyingBank(_spec(backbone.out_channels, dtype="float16"), die_at=None)
    with pytest.raises(BankError, match="extract config dtype float32 != bank spec dtype float16"):
        extract_features(jobs, backbone, bank, CFG)  # CFG says float32
    ctx = DictBank(_spec(backbone.out_channels, "context", (2, 2), dtype="float16"))
    with pytest.raises(BankError, match="extract config dtype float32 != context bank spec dtype float16"):
        extract_features(jobs, backbone, DictBank(_spec(backbone.out_channels)),
                         CFG.model_copy(update={"context_grid": 2}), context_writer=ctx)
    assert bank.writes == [] and ctx.videos() == []  # refused before any video


def _with_ids(dets: list[KeyframeDetections], ids: list[list[int]]) -> list[KeyframeDetections]:
    return [KeyframeDetections(d.key, d.boxes, d.scores, d.source, i) for d, i in zip(dets, ids, strict=True)]


def test_person_ids_from_detections_reach_the_bank(backbone, synthetic_videos) -> None:
    bank = _DyingBank(_spec(backbone.out_channels), die_at=None)
    plain = _jobs(synthetic_videos)[0]  # boxes [2, 0, 3] at seconds 1, 2, 3
    with_ids = VideoJob("v0", plain.path, _with_ids(plain.keyframes, [[5, 8], [], [8, -1, 2]]))
    extract_features([plain], backbone, bank, CFG)
    assert (bank.read_video("v0").person_ids == -1).all()
    # Ids change the bank's content: the video is redone, not skipped as complete...
    summary = extract_features([with_ids], backbone, bank, CFG)
    assert summary.written == ["v0"] and bank.read_video("v0").person_ids.tolist() == [5, 8, 8, -1, 2]
    assert extract_features([with_ids], backbone, bank, CFG).skipped == ["v0"]  # ...once
    # VideoJob.person_ids overrides the detections' ids of its seconds only.
    override = VideoJob("v0", plain.path, with_ids.keyframes, person_ids={3: np.array([1, 2, 3])})
    assert extract_features([override], backbone, bank, CFG).written == ["v0"]
    assert bank.read_video("v0").person_ids.tolist() == [5, 8, 1, 2, 3]
    bad = VideoJob("v0", plain.path, plain.keyframes, person_ids={1: np.array([1, 2, 3])})
    with pytest.raises(ValueError, match="v0 keyframe 1: 2 boxes but 3 person ids"):
        extract_features([bad], backbone, bank, CFG)


def _hash_without_ids(job: VideoJob, config_hash: str, backbone_id: str) -> str:
    """The input-hash recipe banks were written with before person ids existed."""
    import hashlib
    import json

    h = hashlib.sha256()
    stat = Path(job.path).stat()
    h.update(json.dumps([config_hash, backbone_id, str(Path(job.path).resolve()), stat.st_size, stat.st_mtime_ns,
                         job.time_offset]).encode())
    for d in sorted(job.keyframes, key=lambda d: d.key.timestamp):
        h.update(str(d.key.timestamp).encode())
        h.update(np.ascontiguousarray(d.boxes, np.float32).tobytes())
        h.update(np.ascontiguousarray(d.scores, np.float32).tobytes())
    return h.hexdigest()[:16]


def test_input_hash_without_ids_is_unchanged(synthetic_videos) -> None:
    plain = _jobs(synthetic_videos)[0]
    digest = plain.input_hash("cfg", "bb")
    assert digest == _hash_without_ids(plain, "cfg", "bb")  # existing banks stay complete
    unknown = VideoJob("v0", plain.path, _with_ids(plain.keyframes, [[-1, -1], [], [-1, -1, -1]]))
    assert unknown.input_hash("cfg", "bb") == digest  # all -1 is the same bank content as no ids
    known = VideoJob("v0", plain.path, _with_ids(plain.keyframes, [[0, 1], [], [0, 1, 2]]))
    assert known.input_hash("cfg", "bb") != digest
    swapped = VideoJob("v0", plain.path, _with_ids(plain.keyframes, [[1, 0], [], [0, 1, 2]]))
    assert swapped.input_hash("cfg", "bb") != known.input_hash("cfg", "bb")
    override = VideoJob("v0", plain.path, plain.keyframes, person_ids={1: np.array([0, 1]), 3: np.array([0, 1, 2])})
    assert override.input_hash("cfg", "bb") == known.input_hash("cfg", "bb")


def test_time_offset(backbone, synthetic_videos) -> None:
    """Keyframe seconds 901..903 of a clip cut at 900 s read video seconds 1..3."""
    plain, shifted = DictBank(_spec(backbone.out_channels)), DictBank(_spec(backbone.out_channels))
    job = _jobs(synthetic_videos)[0]
    extract_features([job], backbone, plain, CFG)
    moved = [KeyframeDetections(KeyframeKey("v0", d.key.timestamp + 900), d.boxes, d.scores, d.source)
             for d in job.keyframes]
    extract_features([VideoJob("v0", job.path, moved, time_offset=900)], backbone, shifted, CFG)
    assert shifted.read_video("v0").timestamps.tolist() == [901.0, 901.0, 903.0, 903.0, 903.0]
    np.testing.assert_allclose(shifted.read_video("v0").features, plain.read_video("v0").features, rtol=1e-5)


def test_real_video(backbone, shared_data: Path) -> None:
    path = shared_data / "mmaction2" / "demo_demo_spatiotemporal_det.mp4"
    job = VideoJob("demo", path, [
        KeyframeDetections(KeyframeKey("demo", 2), np.array([[0.1, 0.1, 0.4, 0.9], [0.5, 0.2, 0.9, 0.95]]), [0.9, 0.8]),
        KeyframeDetections(KeyframeKey("demo", 7), np.array([[0.2, 0.1, 0.6, 0.9]]), [0.95]),
    ])
    bank = DictBank(_spec(backbone.out_channels))
    summary = extract_features([job], backbone, bank, CFG.model_copy(update={"short_side": 64}))
    rows = bank.read_video("demo")
    assert summary.rows == 3 and rows.features.shape == (3, backbone.out_channels)
    assert np.isfinite(rows.features).all() and rows.features.std() > 0


def test_config_checks(backbone, synthetic_videos) -> None:
    with pytest.raises(ValueError, match="feature_dim"):
        extract_features(_jobs(synthetic_videos), backbone, DictBank(_spec(7)), CFG)
    with pytest.raises(ValueError, match="context_grid"):
        extract_features(_jobs(synthetic_videos), backbone, DictBank(_spec(backbone.out_channels)), CFG,
                         context_writer=DictBank(_spec(backbone.out_channels, "context", (2, 2))))


def test_roi_context_rows_are_the_plain_rows_then_the_clip_context(backbone, synthetic_videos) -> None:
    """roi_context doubles the row: the same RoI part as without it, then the clip's global part,
    equal for every actor of a keyframe; a bank of the plain width is refused."""
    jobs = _jobs(synthetic_videos)
    ctx_cfg = CFG.model_copy(update={"roi_context": True})
    c = backbone.out_channels
    plain, wide = DictBank(_spec(c)), DictBank(_spec(ctx_cfg.feature_dim(c)))
    extract_features(jobs, backbone, plain, CFG)
    extract_features(jobs, backbone, wide, ctx_cfg)
    rows, ctx_rows = plain.read_video("v0"), wide.read_video("v0")
    assert ctx_rows.features.shape == (len(rows.features), 2 * c)
    np.testing.assert_allclose(ctx_rows.features[:, :c], rows.features, rtol=1e-5, atol=1e-6)
    same_time = ctx_rows.timestamps == ctx_rows.timestamps[0]
    assert same_time.sum() >= 2
    np.testing.assert_array_equal(ctx_rows.features[same_time, c:], ctx_rows.features[same_time, c:][:1].repeat(same_time.sum(), 0))
    with pytest.raises(ValueError, match="doubled by roi_context"):
        extract_features(jobs, backbone, DictBank(_spec(c)), ctx_cfg)


def test_roi_geometry_rows_end_with_the_box_geometry(backbone, synthetic_videos) -> None:
    """roi_geometry appends x1, y1, x2, y2, log(h/w) of each row's own box after the plain RoI part."""
    jobs = _jobs(synthetic_videos)
    geo_cfg = CFG.model_copy(update={"roi_geometry": True})
    c = backbone.out_channels
    assert geo_cfg.feature_dim(c) == c + 5 and geo_cfg.roi_recipe().endswith("_geo")
    plain, geo = DictBank(_spec(c)), DictBank(_spec(geo_cfg.feature_dim(c)))
    extract_features(jobs, backbone, plain, CFG)
    extract_features(jobs, backbone, geo, geo_cfg)
    rows, geo_rows = plain.read_video("v0"), geo.read_video("v0")
    np.testing.assert_allclose(geo_rows.features[:, :c], rows.features, rtol=1e-5, atol=1e-6)
    b = geo_rows.boxes.astype(np.float64)
    expected = np.c_[b, np.log((b[:, 3] - b[:, 1]) / (b[:, 2] - b[:, 0]))]
    np.testing.assert_allclose(geo_rows.features[:, c:], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="plus the box geometry"):
        extract_features(jobs, backbone, DictBank(_spec(c)), geo_cfg)


def test_roi_appearance_rows_end_with_box_and_frame_colours(backbone, synthetic_videos) -> None:
    """roi_appearance appends the key frame's mean colour inside each box and over the whole frame."""
    from stad_core.models.actor_features import appearance_targets
    from stad_core.video import decode_clip

    jobs = _jobs(synthetic_videos)
    cfg = CFG.model_copy(update={"roi_appearance": True, "roi_geometry": True})
    c = backbone.out_channels
    assert cfg.feature_dim(c) == c + 5 + 6 and cfg.roi_recipe().endswith("_geo_rgb")
    bank = DictBank(_spec(cfg.feature_dim(c)))
    extract_features(jobs, backbone, bank, cfg)
    rows = bank.read_video("v0")
    t = float(rows.timestamps[0])
    at_t = rows.timestamps == t
    clip = decode_clip(jobs[0].path, t, cfg.num_frames, cfg.stride, short_side=cfg.short_side)
    expected = appearance_targets(clip[None], [torch.from_numpy(rows.boxes[at_t])])
    np.testing.assert_allclose(rows.features[at_t, c + 5:], expected.numpy(), rtol=1e-5, atol=1e-5)
    assert 0.0 <= rows.features[:, c + 5:].min() and rows.features[:, c + 5:].max() <= 1.0
