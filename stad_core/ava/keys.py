"""Keyframe keys (``video_id,tttt``), the video-id rule, and the error type of the AVA readers.

:class:`KeyframeKey` is the one keyframe identity of the project: exclusions, proposals, detector
output, ground truth grouped for training and the keyframes a prediction covers all use it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from stad_core.errors import InputFileError


class AvaFormatError(InputFileError):
    """A malformed AVA-style file (CSV, label map, proposals, frame list), optionally at one line."""


def image_key(video_id: str, timestamp: int) -> str:
    """The AVA image key ``f"{video_id},{timestamp:04d}"`` (``"vid", 902 -> "vid,0902"``)."""
    return f"{video_id},{int(timestamp):04d}"


class KeyframeKey(NamedTuple):
    """One keyframe: a video and a time in seconds of its own timeline.

    A named tuple, so keys hash and compare cheaply (training looks one up per bank keyframe) and
    order by ``(video_id, timestamp)``. Every AVA keyframe is a whole second held as an ``int``;
    ``"902"`` and ``"0902"`` name the same keyframe. Only :meth:`at` on a fractional time (a
    non-AVA timeline) gives a float timestamp.
    """

    video_id: str
    timestamp: float

    @property
    def image_key(self) -> str:
        """``"vid,0902"`` -- the key MMAction2 proposal pickles and AVA tools use."""
        return image_key(self.video_id, self.timestamp)

    def __str__(self) -> str:
        return self.image_key

    @classmethod
    def at(cls, video_id: str, t: float) -> KeyframeKey:
        """The keyframe at ``t`` seconds, a float read from a bank row or a CSV.

        Times are compared at millisecond precision (bank rows and CSVs round-trip floats): ``t`` is
        rounded to 3 decimals, and a whole second becomes an ``int``, so
        ``KeyframeKey.at("v", 902.0004) == KeyframeKey("v", 902)`` (equal hashes too).
        """
        t = round(float(t), 3)
        return cls(str(video_id), int(t) if t.is_integer() else t)

    @classmethod
    def parse(cls, text: str) -> KeyframeKey:
        """Parse ``"vid,0902"`` or ``"vid,902"`` (surrounding spaces ignored).

        Raises ValueError (with the offending text) for anything else; file readers turn that into
        an :class:`AvaFormatError` naming the file and line.
        """
        video_id, sep, stamp = text.strip().rpartition(",")
        video_id, stamp = video_id.strip(), stamp.strip()
        if not sep or not video_id:
            raise ValueError(f"keyframe key {text!r} is not of the form 'video_id,timestamp'")
        return cls(video_id, parse_integer_second(stamp, what=f"keyframe key {text!r}"))


#: What a video id may be: it names the video's folder in feature banks and its files in stage outputs.
VIDEO_ID_RULE = "a non-empty name without '/' or '\\', not '.' or '..', not starting with '__'"


def check_video_id(video_id: str) -> str:
    """Return ``video_id`` if it can name a video everywhere (:data:`VIDEO_ID_RULE`), else raise.

    Ingest rejects files and annotations with other ids before anything is written, and the
    feature banks refuse them (``.``/``..`` would be path steps, ``__`` prefixes are reserved).

    Raises:
        ValueError: naming the id and the rule.
    """
    if (
        not isinstance(video_id, str)
        or not video_id
        or "/" in video_id
        or "\\" in video_id
        or video_id in (".", "..")
        or video_id.startswith("__")
    ):
        raise ValueError(f"invalid video id {video_id!r}: use {VIDEO_ID_RULE}")
    return video_id


def parse_integer_second(stamp: str, *, what: str) -> int:
    """``"0902"`` / ``"902"`` / ``"902.0"`` -> 902; ValueError for fractional, negative or junk."""
    if stamp.isdigit():
        return int(stamp)
    try:
        value = float(stamp)
    except ValueError:
        raise ValueError(f"{what}: timestamp {stamp!r} is not a number") from None
    if not value.is_integer() or value < 0:
        raise ValueError(f"{what}: timestamp {stamp!r} is not a whole, non-negative second")
    return int(value)


def check_readable(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path, or raise InputFileError if it is missing or a directory."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, f"{what} not found", hint="check the path")
    if path.is_dir():
        raise InputFileError(path, f"expected a {what}, found a directory")
    return path


def emit_warnings(lines: Iterable[str], on_warning: Callable[[str], None] | None = None) -> None:
    """Hand each reader warning (``file:line: ...``) to ``on_warning``; default :func:`warnings.warn`."""
    for line in lines:
        if on_warning is None:
            warnings.warn(line, stacklevel=3)
        else:
            on_warning(line)
