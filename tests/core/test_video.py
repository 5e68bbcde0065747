"""Video I/O: probing, timelines, nearest-frame decoding, clip sampling and padding, bad files.

Expected frames are computed independently of ``stad_core.video``: a plain sequential PyAV
decode gives every frame with PyAV's own ``frame.time``, and synthetic videos encode each frame's
index in its pixel values.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stad_core.errors import InputFileError
from stad_core.video import (
    VideoError,
    VideoReader,
    clip_indices,
    decode_clip,
    decode_clips,
    decode_frames_at,
    frame_times,
    nearest_frame_index,
    output_size,
    probe,
    encode_video,
)

REAL = {  # file -> (fps, frames, duration) from DATA.md
    "demo_demo.mp4": (28.0, 280, 10.0),
    "demo_demo_spatiotemporal_det.mp4": (6.0, 57, 9.5),
    "tests_data_test.mp4": (30.0, 300, 10.0),
}


def reference_decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of ``path`` decoded sequentially by PyAV: (times [F] from the first frame,
    rgb [F, H, W, 3])."""
    times, images = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            times.append(frame.time)
            images.append(frame.to_ndarray(format="rgb24"))
    t = np.asarray(times, dtype=np.float64)
    return t - t[0], np.stack(images)


def nearest_by_scan(times: np.ndarray, t: float) -> int:
    """Brute-force nearest frame, earlier frame on ties (the documented rule)."""
    dist = np.abs(times - t)
    return int(np.flatnonzero(dist <= dist.min() + 1e-9)[0])


def expected_clip(center: int, num_frames: int, stride: int, total: int) -> list[int]:
    """The documented window, written out longhand: T//2 samples before the centre."""
    out = []
    for k in range(num_frames):
        i = center + (k - num_frames // 2) * stride
        out.append(min(max(i, 0), total - 1))
    return out


BITS = 7  # frame index written as 7 black/white vertical stripes: survives lossy codecs


def index_video(n: int, *, height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 [n, H, W, 3] frames whose stripes spell the frame index in binary (MSB left)."""
    assert n <= 2**BITS
    frames = np.zeros((n, height, width, 3), dtype=np.uint8)
    edges = np.linspace(0, width, BITS + 1).round().astype(int)
    for i in range(n):
        for b in range(BITS):
            if (i >> (BITS - 1 - b)) & 1:
                frames[i, :, edges[b] : edges[b + 1]] = 255
    return frames


def decoded_indices(clip: torch.Tensor) -> list[int]:
    """Read the binary stripes back from every frame of a decoded clip (any size)."""
    width = clip.shape[2]
    centres = ((np.arange(BITS) + 0.5) * width / BITS).astype(int)
    out = []
    for frame in clip.float().mean(dim=3).numpy():
        bits = frame[:, centres].mean(axis=0) > 128
        out.append(int("".join("1" if b else "0" for b in bits), 2))
    return out


@pytest.fixture(scope="module")
def real_videos(shared_data: Path) -> dict[str, tuple[Path, np.ndarray, np.ndarray]]:
    out = {}
    for name in REAL:
        path = shared_data / "mmaction2" / name
        out[name] = (path, *reference_decode(path))
    return out


# ------------------------------------------------------------------------------ pure helpers


def test_nearest_frame_index_ties_go_to_the_earlier_frame() -> None:
    times = np.array([0.0, 0.1, 0.2, 0.5])
    got = nearest_frame_index(times, np.array([-0.3, 0.0, 0.05, 0.0500001, 0.149, 0.35, 0.36, 9.0]))
    assert got.tolist() == [0, 0, 0, 1, 1, 2, 3, 3]  # 0.05 and 0.35 are exact ties
    assert int(nearest_frame_index(np.array([2.0]), 5.0)) == 0


def test_clip_indices_centre_and_clamp() -> None:
    # 32x2 (SlowFast AVA): 16 samples before the centre, 15 after.
    idx = clip_indices(100, 32, 2, 1000)
    assert idx[0] == 68 and idx[16] == 100 and idx[-1] == 130 and len(idx) == 32
    assert clip_indices(1, 4, 3, 5).tolist() == [0, 0, 1, 4]
    for center, t_, tau, total in [(0, 5, 2, 3), (7, 8, 1, 9), (3, 1, 4, 4)]:
        assert clip_indices(center, t_, tau, total).tolist() == expected_clip(center, t_, tau, total)
    with pytest.raises(ValueError):
        clip_indices(0, 0, 1, 10)


def test_output_size_scales_the_short_side() -> None:
    assert output_size(340, 256, 128) == (170, 128)
    assert output_size(256, 340, 128) == (128, 170)
    assert output_size(340, 256, None) == (340, 256)
    assert output_size(341, 255, 256) == (342, 256)  # floor(341 * 256 / 255)


# ------------------------------------------------------------------------------ real videos


@pytest.mark.shared_data
def test_probe_real_videos(real_videos: dict) -> None:
    for name, (fps, frames, duration) in REAL.items():
        path, times, images = real_videos[name]
        info = probe(path)
        assert info.codec == "h264"
        assert (info.width, info.height) == (340, 256) == (images.shape[2], images.shape[1])
        assert info.num_frames == frames == len(times)
        assert info.fps == pytest.approx(fps, abs=1e-6)
        assert info.duration == pytest.approx(duration, abs=1e-6)
        assert info.start_time == 0.0 and not info.variable_frame_rate
        assert info.path == str(path)


@pytest.mark.shared_data
def test_frame_times_match_pyav_timestamps(real_videos: dict) -> None:
    for path, times, _ in real_videos.values():
        np.testing.assert_allclose(frame_times(path), times, atol=1e-9)


@pytest.mark.shared_data
def test_frame_nearest_to_t_on_real_videos(real_videos: dict) -> None:
    for path, times, images in real_videos.values():
        query = [0.0, 0.51, 1.0, 2.5, 4.99, 7.0, 9.41, times[-1]]
        got = decode_frames_at(path, query)
        assert got.dtype == torch.uint8 and got.shape == (len(query), 256, 340, 3)
        for k, t in enumerate(query):
            assert np.array_equal(got[k].numpy(), images[nearest_by_scan(times, t)]), (path.name, t)
        # A one-frame clip is the same frame.
        assert np.array_equal(decode_clip(path, 2.5, 1, 1)[0].numpy(), images[nearest_by_scan(times, 2.5)])


@pytest.mark.shared_data
def test_clips_on_real_videos_with_padding_at_both_ends(real_videos: dict) -> None:
    path, times, images = real_videos["demo_demo.mp4"]
    total = len(times)
    for t in [0.0, 0.3, 5.0, 9.9]:  # 0 / 0.3 / 9.9 s run past an end of the video with 32x2
        clip = decode_clip(path, t, 32, 2)
        want = expected_clip(nearest_by_scan(times, t), 32, 2, total)
        assert clip.shape == (32, 256, 340, 3)
        assert np.array_equal(clip.numpy(), images[want]), t
    start = decode_clip(path, 0.0, 32, 2).numpy()
    assert all(np.array_equal(start[k], images[0]) for k in range(17))  # 16 pads + the centre
    end = decode_clip(path, times[-1], 8, 4).numpy()
    assert all(np.array_equal(end[k], images[-1]) for k in range(4, 8))


@pytest.mark.shared_data
def test_decode_clips_matches_single_clips_and_decodes_less(real_videos: dict) -> None:
    path, times, images = real_videos["tests_data_test.mp4"]
    query = [6.0, 1.0, 2.0, 1.0]
    with VideoReader(path) as reader:
        got = list(reader.clips(query, 16, 2, short_side=128))
        batched_work = reader.frames_decoded
    assert [t for t, _ in got] == sorted(query)
    single_work = 0
    for t, clip in got:
        assert clip.shape == (16, 128, 170, 3)
        with VideoReader(path) as reader:
            assert torch.equal(clip, reader.clip(t, 16, 2, short_side=128))
            single_work += reader.frames_decoded
    assert batched_work < single_work
    # Full resolution through the module-level iterator agrees with a reference decode.
    for t, clip in decode_clips(path, [1.0, 3.0], 8, 8):
        assert np.array_equal(clip.numpy(), images[expected_clip(nearest_by_scan(times, t), 8, 8, len(times))])


# ------------------------------------------------------------------------------ synthetic videos


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".mkv", "libx264"), (".webm", "libvpx")])
def test_synthetic_cfr_containers(tmp_path: Path, suffix: str, codec: str) -> None:
    path = encode_video(tmp_path / f"v{suffix}", index_video(60), fps=30, codec=codec, keyframe_interval=8)
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (64, 48, 60)
    assert info.fps == pytest.approx(30.0) and info.duration == pytest.approx(2.0, abs=2e-3)
    assert not info.variable_frame_rate
    # Seeks land on keyframes every 8 frames; the decoded frames carry the right indices.
    with VideoReader(path) as reader:
        for t, clip in reader.clips([0.2, 1.0, 1.9], 5, 3):
            c = int(round(t * 30))
            assert decoded_indices(clip) == expected_clip(c, 5, 3, 60)
        assert reader.seeks >= 2 and reader.frames_missing == 0


def test_variable_frame_rate_uses_presentation_times(tmp_path: Path) -> None:
    steps = np.tile([0.02, 0.05, 0.1, 0.03], 10)[:39]
    times = np.concatenate([[0.0], np.cumsum(steps)])
    path = encode_video(tmp_path / "vfr.mkv", index_video(40), times=times, keyframe_interval=6)
    info = probe(path)
    assert info.variable_frame_rate and info.num_frames == 40
    np.testing.assert_allclose(frame_times(path), times, atol=1e-9)
    query = [*np.linspace(0.0, float(times[-1]), 13), 0.61, 1.49]
    got = decoded_indices(decode_frames_at(path, query))
    assert got == [nearest_by_scan(times, t) for t in query]
    # A frame index from t * mean-fps would be wrong here: the timeline must come from pts.
    assert sum(g != int(round(t * info.fps)) for g, t in zip(got, query, strict=True)) >= 3
    clip = decode_clip(path, 1.0, 6, 2)
    assert decoded_indices(clip) == expected_clip(nearest_by_scan(times, 1.0), 6, 2, 40)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_stream_starting_late_is_timed_from_its_first_frame(tmp_path: Path, suffix: str) -> None:
    path = encode_video(tmp_path / f"late{suffix}", index_video(20), times=0.5 + np.arange(20) / 10)
    info = probe(path)
    assert info.start_time == pytest.approx(0.5) and info.duration == pytest.approx(2.0)
    np.testing.assert_allclose(frame_times(path), np.arange(20) / 10, atol=1e-9)
    assert decoded_indices(decode_frames_at(path, [0.0, 1.0, 1.9])) == [0, 10, 19]


def test_short_side_resize_and_reader_reuse(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "tall.mp4", index_video(20, height=64, width=48), fps=10)
    with VideoReader(path) as reader:
        small = reader.clip(1.0, 4, 1, short_side=24)
        full = reader.clip(1.0, 4, 1)
    assert small.shape == (4, 32, 24, 3) and full.shape == (4, 64, 48, 3)
    assert decoded_indices(small) == decoded_indices(full) == [8, 9, 10, 11]
    with VideoReader(path) as reader:
        streamed = list(reader.iter_frames([12, 3, 3, 19], short_side=24))
        with pytest.raises(IndexError):
            next(reader.iter_frames([20]))
    assert [i for i, _ in streamed] == [3, 12, 19]
    assert decoded_indices(torch.from_numpy(np.stack([f for _, f in streamed]))) == [3, 12, 19]
    assert decode_frames_at(path, []).shape == (0, 64, 48, 3)


def test_missing_file_and_non_video(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="not found") as err:
        probe(tmp_path / "nope.mp4")
    assert isinstance(err.value, InputFileError) and err.value.path.endswith("nope.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="cannot open as a video"):
        decode_clip(garbage, 0.0, 4, 1)
    with pytest.raises(VideoError, match="folder"):
        probe(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.mka"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mp2", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="no video stream"):
        probe(path)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated_video_is_a_clear_error(tmp_path: Path, suffix: str) -> None:
    good = encode_video(tmp_path / f"good{suffix}", index_video(75), fps=25, keyframe_interval=5)
    data = good.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 3 // 10])
    with pytest.raises(VideoError) as err:
        probe(cut)
    message = str(err.value)
    assert message.startswith(str(cut)) and ("truncated" in message or "cannot open" in message)


def test_corrupt_frame_data_fails_decoding_with_the_file_named(tmp_path: Path) -> None:
    # Keep the mp4 structure (moov) intact but replace the coded frames (mdat) with noise:
    # the file opens and probes, and decoding then fails with a clear error.
    good = encode_video(tmp_path / "good.mp4", index_video(75), fps=25, keyframe_interval=5)
    data = bytearray(good.read_bytes())
    start, end = data.find(b"mdat") + 4, data.find(b"moov") - 4
    assert 0 < start < end
    data[start:end] = np.random.default_rng(0).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    assert probe(bad).num_frames == 75
    with pytest.raises(VideoError, match="decoding failed|no frame could be decoded") as err:
        list(decode_clips(bad, [0.5, 1.5, 2.5], 4, 2))
    assert str(err.value).startswith(f"{bad}: ")


def test_times_outside_the_video_are_rejected(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "v.mp4", index_video(20), fps=10)
    for t in (-0.5, 2.5, float("nan"), 902.0):
        with pytest.raises(VideoError, match="outside the video"):
            decode_clip(path, t, 2, 1)
    assert decoded_indices(decode_clip(path, 2.0, 1, 1)) == [19]  # t == duration: the last frame


def test_rewritten_file_is_reindexed(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    encode_video(path, index_video(20), fps=10)
    assert probe(path).num_frames == 20
    encode_video(path, index_video(30), fps=10)
    os.utime(path, ns=(1, 1_000_000_000))  # different mtime even on coarse-clock filesystems
    assert probe(path).num_frames == 30
