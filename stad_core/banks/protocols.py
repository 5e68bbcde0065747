"""The two faces of a bank that the rest of stad codes against: :class:`FeatureBankReader` (heads,
trainers, evaluation) and :class:`FeatureBankWriter` (extraction, ACFB). ``storage``'s zarr bank
and :class:`~stad_core.banks.DictBank` satisfy both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from stad_core.banks.rows import ActorRows, ContextMaps
from stad_core.banks.spec import BankSpec
from stad_core.banks.window import BankWindow, WindowBatch


@runtime_checkable
class FeatureBankReader(Protocol):
    """What heads, trainers and evaluation need from a bank (zarr bank or :class:`DictBank`)."""

    @property
    def spec(self) -> BankSpec: ...

    def videos(self) -> list[str]:
        """Ids of the complete videos, sorted."""
        ...

    def read_video(self, video_id: str) -> ActorRows:
        """All rows of a video, time-sorted."""
        ...

    def rows_at(self, video_id: str, t: float) -> ActorRows:
        """The rows of keyframe ``t`` itself (timestamp within TIME_TOLERANCE)."""
        ...

    def window(
        self,
        video_id: str,
        t: float,
        *,
        width: int = 60,
        per_second: int = 5,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> BankWindow:
        """Long-term window of keyframe ``t`` (see the :mod:`stad_core.banks` docstring)."""
        ...

    def gather_windows(
        self,
        keys: Sequence[tuple[str, float]],
        *,
        width: int = 60,
        per_second: int = 5,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> WindowBatch:
        """Windows of many keyframes ``(video_id, t)``: features [B, W*K, D], mask [B, W*K]."""
        ...

    def context(self, video_id: str, t: float) -> np.ndarray:
        """Context map [C, h, w] of keyframe ``t``."""
        ...


@runtime_checkable
class FeatureBankWriter(Protocol):
    """What extraction (and ACFB) need to fill a bank, one video at a time.

    Writes follow :mod:`stad_core.banks.checks`: features/maps must come in ``spec.dtype``.
    """

    @property
    def spec(self) -> BankSpec: ...

    def is_complete(self, video_id: str) -> bool:
        """True once a complete version of the video is visible to readers."""
        ...

    def video_meta(self, video_id: str) -> dict[str, Any]:
        """The ``meta`` stored with the video's complete version (e.g. input hashes for resume)."""
        ...

    def write_video(
        self, video_id: str, rows: ActorRows, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Write (or atomically replace) a video's rows; visible only once fully written."""
        ...

    def write_context(
        self, video_id: str, maps: ContextMaps, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Write (or atomically replace) a video's context maps."""
        ...

    def delete_video(self, video_id: str) -> None:
        """Remove a video (all versions)."""
        ...
