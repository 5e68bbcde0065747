"""Video I/O with PyAV: probing, frame timelines, and clip decoding by presentation time.

Conventions (design §4):

* **Timeline.** A frame's time is its presentation timestamp (pts) in seconds, measured from the
  first frame of the video stream (the smallest pts that is presented). Times never assume a
  frame rate, so variable-frame-rate files and odd rates (6, 28, 29.97 fps) work unchanged.
  ``VideoInfo.start_time`` keeps that origin in the stream's own clock.
* **Frame index.** Frames are numbered ``0..F-1`` in presentation order. The index is built by
  demuxing the packets of the video stream (no decoding), so it is exact even where containers
  carry no frame count (mkv/webm) or a wrong one.
* **Keyframe time -> frame.** The frame for time ``t`` is the frame whose time is nearest to
  ``t``; when ``t`` lies exactly half-way between two frames the *earlier* one wins (it is the
  frame on screen up to that instant). Times within the video but before the first / after the
  last frame snap to the edge frame; times outside ``[0, duration]`` are an error.
* **Clip sampling.** A clip of ``T`` frames with stride ``tau`` centred on frame ``c`` takes the
  frames ``c + (k - T // 2) * tau`` for ``k = 0..T-1``, i.e. ``T // 2`` samples before the centre
  and ``T - T // 2 - 1`` after it. This is the window SlowFast and MMAction2 use for AVA
  (``range(c - T//2*tau, c + T//2*tau, tau)`` for even ``T``; 32x2 covers ``c-32 .. c+30``), so
  features computed here line up with checkpoints trained there. Indices before the first or
  after the last frame are clamped, i.e. the edge frames repeat (as in both references).
* **Decoding.** One seek per clip (to the keyframe at or before the first needed frame), then
  decoding forward; only the frames that are used are converted to RGB. Many clips of one video
  (``decode_clips``) share a single forward pass: the reader seeks only when a keyframe lies
  between the current position and the next needed frame (so a seek never decodes more than
  forward decoding would), and keeps a small buffer of frames shared by overlapping clips.
* **Output.** ``uint8`` RGB tensors ``[T, H, W, 3]``. With ``short_side`` the frames are resized
  (bilinear, by libswscale together with the colour conversion) so the short side has that many
  pixels and the long side ``floor(long * short_side / short)`` (the rounding of SlowFast's and
  torchvision's ``Resize``). The sample aspect ratio and rotation metadata are ignored.
* **Index cache.** ``probe``, ``frame_times`` and readers share an in-process cache of the last
  64 frame indexes (~17 bytes a frame), keyed by resolved path, size and modification time, so
  a rewritten file is indexed again. ``clear_index_cache()`` empties it.
* **Errors.** Every problem with a file is a ``VideoError`` (an ``InputFileError``) naming the
  file, what is wrong and what to do; callers that process many videos catch it per video.
  Frames the decoder silently drops (concealed corruption) are replaced by the nearest decoded
  frame of the same clip and counted in ``VideoReader.frames_missing``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import av.error
from av.video.reformatter import VideoReformatter
import numpy as np
import torch

from stad_core.errors import InputFileError
from stad_core.progress import ProgressFn, report

__all__ = [
    "FrameIndex",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "clear_index_cache",
    "clip_indices",
    "decode_clip",
    "decode_clips",
    "decode_frames_at",
    "frame_times",
    "nearest_frame_index",
    "output_size",
    "probe",
    "encode_video",
]

# Slack for comparing times in seconds (float error of pts * time_base, not a frame tolerance).
_TIME_EPS = 1e-6


class VideoError(InputFileError):
    """A video that cannot be used: missing, unreadable, corrupt, no video stream, decode failure."""


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` measures about a video file (from its packets, not only its header).

    ``fps`` is the average rate ``(F - 1) / (last frame time)``; ``duration`` runs to the end of
    the last frame (its time plus the median frame interval); ``start_time`` is the first frame's
    pts in seconds on the stream's own clock (frame times are relative to it).
    """

    path: str
    codec: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    start_time: float
    variable_frame_rate: bool


@dataclass(frozen=True)
class FrameIndex:
    """The presentation timeline of one video stream.

    Attributes:
        pts: int64 ``[F]`` frame pts in stream time-base ticks, ascending (presentation order).
        times: float64 ``[F]`` seconds from the first frame (``times[0] == 0``).
        keyframe: bool ``[F]`` whether frame ``i`` is a keyframe (a seek/decode entry point).
        time_base: seconds per pts tick.
    """

    pts: np.ndarray
    times: np.ndarray
    keyframe: np.ndarray
    time_base: Fraction

    @property
    def num_frames(self) -> int:
        return int(self.pts.shape[0])


# ----------------------------------------------------------------------------------------------
# Pure helpers (no file access)


def nearest_frame_index(times: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Index of the frame nearest to each time; ties go to the earlier frame.

    Args:
        times: float64 ``[F]`` ascending frame times (F >= 1).
        t: a time or an array of times ``[K]`` in seconds.
    Returns:
        int64 array shaped like ``t`` with values in ``[0, F-1]``.
    """
    times = np.asarray(times, dtype=np.float64)
    t_arr = np.asarray(t, dtype=np.float64)
    count = times.shape[0]
    after = np.searchsorted(times, t_arr, side="left").clip(1, max(count - 1, 1))
    if count == 1:
        return np.zeros(t_arr.shape, dtype=np.int64)
    before = after - 1
    # Earlier frame wins unless the later one is strictly nearer (beyond float noise).
    take_after = (times[after] - t_arr) < (t_arr - times[before]) - 1e-9
    return np.where(take_after, after, before).astype(np.int64)


def clip_indices(center: int, num_frames: int, stride: int, total: int) -> np.ndarray:
    """Frame indices of a ``num_frames x stride`` clip centred on frame ``center``.

    Returns int64 ``[num_frames]``: ``center + (k - num_frames // 2) * stride`` for
    ``k = 0..num_frames-1``, clamped to ``[0, total-1]`` (edge frames repeat).
    """
    if num_frames < 1 or stride < 1:
        raise ValueError(f"clip needs num_frames >= 1 and stride >= 1, got {num_frames}x{stride}")
    offsets = (np.arange(num_frames, dtype=np.int64) - num_frames // 2) * stride
    return np.clip(center + offsets, 0, total - 1)


def output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """``(width, height)`` after scaling the short side to ``short_side`` (None: unchanged)."""
    if short_side is None:
        return width, height
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    if width <= height:
        return short_side, max(1, math.floor(height * short_side / width))
    return max(1, math.floor(width * short_side / height)), short_side


# ----------------------------------------------------------------------------------------------
# Opening and indexing


def _open(path: str) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` and return it with its first video stream, or raise ``VideoError``."""
    if not os.path.exists(path):
        raise VideoError(path, "video file not found", hint="check the path and the videos folder")
    if os.path.isdir(path):
        raise VideoError(path, "is a folder, not a video file")
    try:
        container = av.open(path, mode="r")
    except PermissionError:  # PyAV's PermissionError is also an FFmpegError: check it first
        raise VideoError(path, "permission denied", hint="check the file's permissions") from None
    except av.error.FFmpegError as exc:
        raise VideoError(
            path, f"cannot open as a video ({_reason(exc)})", hint="the file is corrupt, truncated or not a video"
        ) from None
    except OSError as exc:
        raise VideoError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoError(path, f"no video stream (streams: {', '.join(kinds)})")
    return container, container.streams.video[0]


def _reason(exc: BaseException) -> str:
    """A short decoder message without PyAV's ``[Errno N]`` prefix and repeated file name."""
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


def _file_key(path: str) -> tuple[str, int, int]:
    """Identity of a file's content for caching: resolved path, size, modification time."""
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=64)
def _cached_index(real_path: str, size: int, mtime_ns: int) -> tuple[FrameIndex, VideoInfo]:
    del size, mtime_ns  # part of the cache key only: a rewritten file is re-indexed
    container, stream = _open(real_path)
    try:
        return _build_index(real_path, container, stream)
    finally:
        container.close()


def clear_index_cache() -> None:
    """Forget every cached frame index (the next probe demuxes the file again)."""
    _cached_index.cache_clear()


def _index_and_info(path: str | Path) -> tuple[FrameIndex, VideoInfo]:
    path = str(path)
    if not os.path.exists(path):
        raise VideoError(path, "video file not found", hint="check the path and the videos folder")
    index, info = _cached_index(*_file_key(path))
    # The cache is keyed by the resolved path; report the path the caller used.
    return index, VideoInfo(**{**info.__dict__, "path": path})


def _build_index(
    path: str, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[FrameIndex, VideoInfo]:
    """Demux (not decode) every packet of ``stream`` to get the exact presentation timeline."""
    pts_list: list[int] = []
    key_list: list[bool] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:  # flush packet / dropped by an edit list
                continue
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                raise VideoError(
                    path,
                    "video packets carry no timestamps",
                    hint="remux into a container first, e.g. ffmpeg -i IN -c copy OUT.mkv",
                )
            pts_list.append(int(ts))
            key_list.append(bool(packet.is_keyframe))
    except av.error.FFmpegError as exc:
        raise VideoError(
            path,
            f"corrupt or truncated after {len(pts_list)} frames ({_reason(exc)})",
            hint="re-download or re-encode the file",
        ) from None
    if not pts_list:
        raise VideoError(path, "the video stream has no frames")

    pts = np.asarray(pts_list, dtype=np.int64)
    keys = np.asarray(key_list, dtype=bool)
    order = np.argsort(pts, kind="stable")
    pts, keys = pts[order], keys[order]
    # Broken muxers can repeat a pts; the decoder then yields frames we cannot tell apart.
    pts, first = np.unique(pts, return_index=True)
    keys = keys[first]
    keys[0] = True  # decoding always starts somewhere: treat the first frame as an entry point

    time_base = Fraction(stream.time_base) if stream.time_base is not None else Fraction(1, 1)
    times = (pts - pts[0]).astype(np.float64) * float(time_base)
    steps = np.diff(pts)
    # Exact rational seconds, so a 28 fps file reports 28.0 and a 9.5 s file 9.5.
    span = int(pts[-1] - pts[0]) * time_base
    if steps.size:
        median_step = float(np.median(steps))
        # Containers with coarse clocks (mkv: 1 ms) jitter by a tick at constant rate.
        variable = bool(steps.max() - steps.min() > max(2.0, 0.01 * median_step))
        frame_period = Fraction(median_step) * time_base
        fps = float((len(pts) - 1) / span) if span > 0 else 0.0
    else:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frame_period = 1 / Fraction(rate) if rate else Fraction(0)
        variable = False
    nominal = stream.average_rate or stream.guessed_rate
    if not variable and nominal and fps and abs(float(nominal) / fps - 1) < 0.005:
        fps = float(nominal)  # a 1 ms clock measures 30 fps as 29.995: report the declared rate
    duration = float(span + frame_period)
    _check_not_truncated(path, container, stream, duration, len(pts))

    index = FrameIndex(pts=pts, times=times, keyframe=keys, time_base=time_base)
    codec = stream.codec_context
    info = VideoInfo(
        path=path,
        codec=codec.name if codec is not None else "unknown",
        width=int(stream.width or (codec.width if codec is not None else 0)),
        height=int(stream.height or (codec.height if codec is not None else 0)),
        fps=float(fps),
        num_frames=int(len(pts)),
        duration=duration,
        start_time=float(pts[0] * time_base),
        variable_frame_rate=variable,
    )
    if info.width <= 0 or info.height <= 0:
        raise VideoError(path, "the video stream has no frame size")
    return index, info


def _check_not_truncated(
    path: str, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
    duration: float, count: int,
) -> None:
    """A file cut short (an interrupted download) keeps the duration its header declares but
    holds fewer frames; mkv/webm open and demux it without complaint, so compare the two."""
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = container.duration / av.time_base  # all streams: allow audio to run longer
    else:
        return
    if declared - duration > max(1.0, 0.05 * declared):
        raise VideoError(
            path,
            f"truncated: the header declares {declared:.2f} s but only {duration:.2f} s "
            f"({count} frames) are in the file",
            hint="re-download or re-encode the file",
        )


def probe(path: str | Path) -> VideoInfo:
    """Measure a video: codec, size, frame count, fps, duration, start time, variable rate.

    Reads every packet of the video stream (no decoding), so counts and durations are exact.
    Raises ``VideoError`` for a missing, unreadable or corrupt file or one without video.
    """
    return _index_and_info(path)[1]


def frame_times(path: str | Path) -> np.ndarray:
    """float64 ``[F]``: every frame's time in seconds from the first frame, presentation order."""
    return _index_and_info(path)[0].times.copy()


# ----------------------------------------------------------------------------------------------
# Decoding


class VideoReader:
    """An open video with its frame index, for decoding many clips or frames of one file.

    Use as a context manager (or call ``close``). Not thread-safe: one reader per thread.

    Args:
        path: video file.
        threads: decoder threads; 0 lets FFmpeg choose (frame + slice threading).
    """

    def __init__(self, path: str | Path, *, threads: int = 0) -> None:
        self.path = str(path)
        self.index, self.info = _index_and_info(self.path)
        self._container, self._stream = _open(self.path)
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = threads
        self._reformatter = VideoReformatter()
        # Half the smallest frame interval: how far a decoded pts may be from the index and match.
        steps = np.diff(self.index.pts)
        self._match_ticks = int(steps.min() // 2) if steps.size else 0
        self.frames_decoded = 0  # frames the decoder produced (work done), for benchmarks
        self.frames_missing = 0  # indexed frames the decoder never produced (filled from neighbours)
        self.seeks = 0

    # -- context management
    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- timeline
    @property
    def times(self) -> np.ndarray:
        """float64 ``[F]`` frame times in seconds from the first frame."""
        return self.index.times

    def frame_index_at(self, t: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Index of the frame nearest to each time (see module notes); checks the range."""
        t_arr = np.asarray(t, dtype=np.float64)
        bad = ~np.isfinite(t_arr) | (t_arr < -_TIME_EPS) | (t_arr > self.info.duration + _TIME_EPS)
        if bad.any():
            value = float(t_arr.reshape(-1)[np.argmax(bad.reshape(-1))])
            raise VideoError(
                self.path,
                f"time {value:g} s is outside the video (0 to {self.info.duration:.3f} s)",
                hint="times are seconds from the start of this video file",
            )
        return nearest_frame_index(self.index.times, t_arr)

    def clip_indices(self, t: float, num_frames: int, stride: int) -> np.ndarray:
        """int64 ``[num_frames]`` frame indices of the clip centred on time ``t``."""
        center = int(self.frame_index_at(t))
        return clip_indices(center, num_frames, stride, self.info.num_frames)

    # -- decoding
    def clip(self, t: float, num_frames: int, stride: int, *, short_side: int | None = None) -> torch.Tensor:
        """uint8 ``[num_frames, H, W, 3]`` RGB clip centred on the frame nearest to ``t``."""
        return next(self.clips([t], num_frames, stride, short_side=short_side))[1]

    def clips(
        self,
        times: Sequence[float] | np.ndarray,
        num_frames: int,
        stride: int,
        *,
        short_side: int | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Iterator[tuple[float, torch.Tensor]]:
        """Decode one clip per time in a single forward pass; yields ``(t, clip)`` in time order.

        Clips come out sorted by ``t`` (stable for equal times, so duplicates come out once
        each); every clip is uint8 ``[num_frames, H, W, 3]``. Memory holds only the frames shared
        by clips still pending, about one clip span.
        """
        times_arr = np.asarray(times, dtype=np.float64).reshape(-1)
        order = np.argsort(times_arr, kind="stable")
        sorted_times = times_arr[order]
        centers = self.frame_index_at(sorted_times)
        clip_idx = [clip_indices(int(c), num_frames, stride, self.info.num_frames) for c in centers]
        if not clip_idx:
            return
        wanted = np.unique(np.concatenate(clip_idx))
        size = output_size(self.info.width, self.info.height, short_side)

        buffer: dict[int, np.ndarray | None] = {}
        pending = 0  # next clip (in time order) to emit
        for n, rgb in self._decode_indices(wanted, size):
            buffer[n] = rgb
            while pending < len(clip_idx) and int(clip_idx[pending][-1]) <= n:
                yield float(sorted_times[pending]), self._assemble(clip_idx[pending], buffer)
                pending += 1
                report(on_progress, pending, len(clip_idx))
                if pending < len(clip_idx):
                    # Clip starts never decrease in time order, so older frames are done with.
                    lowest = int(clip_idx[pending][0])
                    for key in [k for k in buffer if k < lowest]:
                        del buffer[key]

    def frames_at(self, times: Sequence[float] | np.ndarray, *, short_side: int | None = None) -> torch.Tensor:
        """uint8 ``[K, H, W, 3]``: the frame nearest to each time, in the order given."""
        idx = self.frame_index_at(np.asarray(times, dtype=np.float64).reshape(-1))
        size = output_size(self.info.width, self.info.height, short_side)
        if idx.size == 0:
            return torch.empty((0, size[1], size[0], 3), dtype=torch.uint8)
        decoded = dict(self._decode_indices(np.unique(idx), size))
        return self._assemble(idx, decoded)

    def iter_frames(
        self, indices: Sequence[int] | np.ndarray | None = None, *, short_side: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stream frames in index order without holding them: ``(i, rgb uint8 [H, W, 3])``.

        ``indices`` (default: every frame) are sorted and de-duplicated; frames the decoder
        never produced are skipped (``frames_missing`` counts them).
        """
        wanted = np.arange(self.info.num_frames) if indices is None else np.unique(np.asarray(indices, np.int64))
        if wanted.size and (wanted[0] < 0 or wanted[-1] >= self.info.num_frames):
            raise IndexError(f"frame indices must be in [0, {self.info.num_frames}), got {wanted[0]}..{wanted[-1]}")
        size = output_size(self.info.width, self.info.height, short_side)
        for i, rgb in self._decode_indices(wanted, size):
            if rgb is not None:
                yield i, rgb

    def _assemble(self, indices: np.ndarray, frames: dict[int, np.ndarray | None]) -> torch.Tensor:
        """Stack the frames of ``indices``; a frame the decoder never produced is replaced by the
        nearest decoded frame of the same clip (like edge padding)."""
        have = [int(i) for i in indices if frames.get(int(i)) is not None]
        if not have:
            t = float(self.index.times[int(indices[len(indices) // 2])])
            raise VideoError(self.path, f"no frame could be decoded near {t:.3f} s", hint="the file is corrupt")
        out = []
        for i in indices:
            rgb = frames.get(int(i))
            if rgb is None:
                rgb = frames[min(have, key=lambda j: (abs(j - int(i)), j))]
            out.append(rgb)
        return torch.from_numpy(np.stack(out))

    def _to_rgb(self, frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
        # One reformatter per reader: it keeps its libswscale context between frames, where
        # ``frame.to_ndarray(format=...)`` builds a new one per frame (measured 4x slower).
        rgb = self._reformatter.reformat(
            frame, width=size[0], height=size[1], format="rgb24", interpolation="BILINEAR"
        )
        return np.ascontiguousarray(rgb.to_ndarray())

    def _decode_indices(
        self, wanted: np.ndarray, size: tuple[int, int]
    ) -> Iterator[tuple[int, np.ndarray | None]]:
        """Yield ``(i, rgb [H, W, 3])`` (``size = (W, H)``) per index in ``wanted`` (ascending, unique);
        ``rgb`` is None for a frame the decoder never produced. Seeks only when a keyframe lies
        strictly between the current position and the next wanted frame."""
        key_positions = np.flatnonzero(self.index.keyframe)
        stream_iter: Iterator[tuple[int, av.VideoFrame]] | None = None
        current: tuple[int, av.VideoFrame] | None = None  # last decoded, not yet passed
        for n in (int(x) for x in wanted):
            entry = int(key_positions[np.searchsorted(key_positions, n, side="right") - 1])
            position = current[0] if current is not None else -1
            if stream_iter is None or entry > position + 1:
                stream_iter = self._decode_from(entry, n)
                current = None
            while current is None or current[0] < n:
                current = next(stream_iter, None)
                if current is None:  # end of stream
                    break
            if current is not None and current[0] == n:
                yield n, self._to_rgb(current[1], size)
            else:
                self.frames_missing += 1
                yield n, None
                if current is None:
                    stream_iter = None  # exhausted: a later index needs a fresh seek

    def _decode_from(self, entry: int, target: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Seek to keyframe ``entry`` and yield ``(index, frame)`` forward from there.

        If the first decoded frame is already past ``target`` (open-GOP streams, or containers
        that seek by decode time), seek again from an earlier keyframe.
        """
        key_positions = np.flatnonzero(self.index.keyframe)
        k = int(np.searchsorted(key_positions, entry))
        while True:
            entry = int(key_positions[k])
            frames = self._decode_after_seek(entry)
            first = next(frames, None)
            if first is None or first[0] <= target or k == 0:
                break
            k -= 1
        if first is None:
            return
        yield first
        yield from frames

    def _decode_after_seek(self, entry: int) -> Iterator[tuple[int, av.VideoFrame]]:
        pts_index = self.index.pts
        last_good = float(self.index.times[entry])
        try:
            self._container.seek(int(pts_index[entry]), backward=True, any_frame=False, stream=self._stream)
            self.seeks += 1
            for frame in self._container.decode(self._stream):
                self.frames_decoded += 1
                ts = frame.pts if frame.pts is not None else frame.dts
                if ts is None:
                    continue
                i = int(np.searchsorted(pts_index, ts))
                if i < len(pts_index) and pts_index[i] == ts:
                    last_good = float(self.index.times[i])
                    yield i, frame
                    continue
                # Not an indexed pts: accept the nearest index within half a frame interval.
                cand = [j for j in (i - 1, i) if 0 <= j < len(pts_index)]
                j = min(cand, key=lambda c: abs(int(pts_index[c]) - ts))
                if abs(int(pts_index[j]) - ts) <= self._match_ticks:
                    yield j, frame
        except av.error.FFmpegError as exc:
            raise VideoError(
                self.path, f"decoding failed near {last_good:.3f} s ({_reason(exc)})", hint="the file is corrupt"
            ) from None


def decode_clip(
    path: str | Path, t: float, num_frames: int, stride: int, *, short_side: int | None = None
) -> torch.Tensor:
    """uint8 ``[num_frames, H, W, 3]`` RGB clip centred on the frame nearest to ``t`` seconds.

    Frames ``c + (k - num_frames // 2) * stride`` (``k = 0..num_frames-1``) around the centre
    frame ``c``; indices past either end repeat the edge frame. One seek, then forward decoding.
    """
    with VideoReader(path) as reader:
        return reader.clip(t, num_frames, stride, short_side=short_side)


def decode_clips(
    path: str | Path,
    times: Sequence[float],
    num_frames: int,
    stride: int,
    *,
    short_side: int | None = None,
    threads: int = 0,
    on_progress: ProgressFn | None = None,
) -> Iterator[tuple[float, torch.Tensor]]:
    """Many clips of one video in one forward pass; yields ``(t, clip)`` sorted by ``t``.

    Each clip is uint8 ``[num_frames, H, W, 3]`` exactly as ``decode_clip`` would return it.
    The file stays open until the iterator is exhausted or closed. ``threads``: decoder threads
    (0: FFmpeg chooses; 1 keeps a background decoder off the cores a model is using).
    """
    with VideoReader(path, threads=threads) as reader:
        yield from reader.clips(times, num_frames, stride, short_side=short_side, on_progress=on_progress)


def decode_frames_at(path: str | Path, times: Sequence[float], *, short_side: int | None = None) -> torch.Tensor:
    """uint8 ``[K, H, W, 3]``: the frame nearest to each of ``times`` (input order)."""
    with VideoReader(path) as reader:
        return reader.frames_at(times, short_side=short_side)


def encode_video(
    path: str | Path,
    frames: np.ndarray | torch.Tensor | Iterable[np.ndarray],
    *,
    fps: float = 30.0,
    times: Sequence[float] | np.ndarray | None = None,
    codec: str = "libx264",
    keyframe_interval: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode uint8 RGB frames (``[T, H, W, 3]``, or any iterable of ``[H, W, 3]``; even ``H``, ``W``).

    An iterable is encoded as it is produced (one frame in memory at a time: synthetic rendering).
    With ``times`` (seconds, strictly increasing, one per frame) each frame gets exactly that
    presentation time on a 1/1000 s clock -- a variable-frame-rate file; otherwise frames are
    ``1 / fps`` apart. The container follows the file extension. ``options={"threads": "1"}`` also
    pins the encoder to one thread (reproducible output). A failure removes the partial file.
    """
    path = Path(path)
    if isinstance(frames, torch.Tensor):
        frames = frames.numpy()
    if times is not None:
        times_arr = np.asarray(times, dtype=np.float64)
        if times_arr.ndim != 1 or np.any(np.diff(times_arr) <= 0):
            raise ValueError("times must give one strictly increasing time per frame")
        time_base = Fraction(1, 1000)
        pts = np.round(times_arr / float(time_base)).astype(np.int64)
        if np.any(np.diff(pts) <= 0):
            raise ValueError("times must be at least 1 ms apart")
        if isinstance(frames, np.ndarray) and len(frames) != len(pts):
            raise ValueError("times must give one strictly increasing time per frame")
    else:
        time_base = 1 / Fraction(fps).limit_denominator(100_000)
        pts = None
    rate = Fraction(fps).limit_denominator(100_000)
    options = dict(options or {})
    stream = None
    try:
        with av.open(str(path), mode="w") as container:
            for i, image in enumerate(frames):
                image = np.asarray(image)
                if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
                    raise ValueError(f"frames must be uint8 [H, W, 3] each, got {image.dtype} {list(image.shape)}")
                if stream is None:
                    stream = container.add_stream(codec, rate=rate, options=options)
                    stream.width, stream.height = int(image.shape[1]), int(image.shape[0])
                    stream.pix_fmt = "yuv420p"
                    stream.codec_context.time_base = time_base
                    if "threads" in options:
                        stream.codec_context.thread_count = int(options["threads"])
                    if keyframe_interval is not None:
                        stream.codec_context.gop_size = keyframe_interval
                if pts is not None and i >= len(pts):
                    raise ValueError("times must give one strictly increasing time per frame")
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts, frame.time_base = (int(pts[i]) if pts is not None else i), time_base
                container.mux(stream.encode(frame))
            if stream is None:
                raise ValueError("frames must hold at least one frame")
            if pts is not None and i + 1 != len(pts):
                raise ValueError("times must give one strictly increasing time per frame")
            container.mux(stream.encode(None))
    except BaseException:
        path.unlink(missing_ok=True)  # never leave a half-written file that looks complete
        raise
    return path
