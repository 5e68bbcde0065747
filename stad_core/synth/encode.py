"""Streaming H.264 MP4 writer for rendered frames (one frame in memory at a time).

``stad_core.video.write_video`` takes the whole clip as one array; synthetic videos are rendered
frame by frame, so this writer encodes as it goes. Single-threaded x264 without B-frames keeps the
output reproducible and cheap to seek.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np


class Mp4Writer:
    """``with Mp4Writer(path, w, h, fps) as out: out.write(frame_uint8_HxWx3)``; frame i has pts i/fps."""

    def __init__(self, path: str | Path, width: int, height: int, fps: int, *, crf: int = 16, gop: int = 10) -> None:
        self.path = Path(path)
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(
            "libx264", rate=fps, options={"crf": str(crf), "preset": "veryfast", "bf": "0", "threads": "1"}
        )
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = Fraction(1, fps)
        self._stream.codec_context.gop_size = gop
        self._stream.codec_context.thread_count = 1
        self._time_base = Fraction(1, fps)
        self._shape = (height, width, 3)
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        """Append one uint8 RGB frame ``[H, W, 3]``."""
        if image.shape != self._shape or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 frame of shape {self._shape}, got {image.dtype} {image.shape}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = self.frames, self._time_base
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None  # type: ignore[assignment]

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:  # do not leave a half-written file that looks complete
            try:
                self._container.close()
            finally:
                self.path.unlink(missing_ok=True)
