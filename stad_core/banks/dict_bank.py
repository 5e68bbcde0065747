"""An in-memory bank over plain dicts, for tests of heads, trainers and extraction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stad_core.banks.checks import check_context, check_rows
from stad_core.banks.rows import TIME_TOLERANCE, ActorRows, ContextMaps, find_keyframe
from stad_core.banks.spec import ROW_KINDS, BankError, BankSpec
from stad_core.banks.window import BankWindow, SecondIndex, WindowBatch, assemble_window, second_index, stack_windows


class DictBank:
    """A :class:`FeatureBankReader` (and writer) over plain dicts, for tests of heads and trainers.

    ``DictBank(spec, {"vid": ActorRows(...)})`` or, for context banks, ``contexts={"vid": ContextMaps}``.
    Rows are checked and time-sorted like the zarr bank does (features in ``spec.dtype``); windows
    are sampled by the same code.
    """

    def __init__(
        self,
        spec: BankSpec,
        videos: Mapping[str, ActorRows] | None = None,
        *,
        contexts: Mapping[str, ContextMaps] | None = None,
    ) -> None:
        self._spec = spec
        self._rows: dict[str, tuple[ActorRows, SecondIndex]] = {}
        self._contexts: dict[str, ContextMaps] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        for vid, rows in (videos or {}).items():
            self.write_video(vid, rows)
        for vid, maps in (contexts or {}).items():
            self.write_context(vid, maps)

    def __repr__(self) -> str:
        return f"DictBank(kind={self._spec.kind}, D={self._spec.feature_dim}, {self._spec.dtype})"

    @property
    def spec(self) -> BankSpec:
        return self._spec

    # writer side
    def is_complete(self, video_id: str) -> bool:
        return video_id in self._rows or video_id in self._contexts

    def video_meta(self, video_id: str) -> dict[str, Any]:
        self._require(video_id)
        return dict(self._meta.get(video_id, {}))

    def write_video(
        self, video_id: str, rows: ActorRows, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        rows = check_rows(rows, self._spec, video_id, bank=repr(self))
        self._rows[video_id] = (rows, second_index(rows.timestamps))
        self._meta[video_id] = dict(meta or {})

    def write_context(
        self, video_id: str, maps: ContextMaps, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        self._contexts[video_id] = check_context(maps, self._spec, video_id, bank=repr(self))
        self._meta[video_id] = dict(meta or {})

    def delete_video(self, video_id: str) -> None:
        self._rows.pop(video_id, None)
        self._contexts.pop(video_id, None)
        self._meta.pop(video_id, None)

    # reader side
    def videos(self) -> list[str]:
        return sorted(set(self._rows) | set(self._contexts))

    def _require(self, video_id: str) -> None:
        if not self.is_complete(video_id):
            raise BankError(f"video {video_id!r} is not in this bank (known: {len(self.videos())})")

    def _video(self, video_id: str) -> tuple[ActorRows, SecondIndex]:
        if self._spec.kind not in ROW_KINDS:
            raise BankError(f"a {self._spec.kind} bank has no actor rows; use context()")
        self._require(video_id)
        return self._rows[video_id]

    def read_video(self, video_id: str) -> ActorRows:
        return self._video(video_id)[0]

    def rows_at(self, video_id: str, t: float) -> ActorRows:
        rows, _ = self._video(video_id)
        keep = np.abs(rows.timestamps - t) <= TIME_TOLERANCE
        return rows.take(np.flatnonzero(keep))

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
        rows, index = self._video(video_id)
        return assemble_window(
            lambda idx: rows.features[idx], video_id, index, rows.timestamps, t,
            width=width, per_second=per_second, training=training, rng=rng,
            feature_dim=self._spec.feature_dim, dtype=self._spec.numpy_dtype,
        )

    def gather_windows(
        self,
        keys: Sequence[tuple[str, float]],
        *,
        width: int = 60,
        per_second: int = 5,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> WindowBatch:
        wins = [
            self.window(v, t, width=width, per_second=per_second, training=training, rng=rng)
            for v, t in keys
        ]
        return stack_windows(wins, width * per_second, self._spec)

    def context(self, video_id: str, t: float) -> np.ndarray:
        if self._spec.kind != "context":
            raise BankError(f"a {self._spec.kind} bank has no context maps")
        self._require(video_id)
        maps = self._contexts[video_id]
        i = find_keyframe(maps.timestamps, t)
        if i is None:
            raise BankError(f"video {video_id!r} has no context map at t={t}")
        return maps.maps[i]
