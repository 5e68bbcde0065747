"""Helpers shared by the bank tests (tiny random banks, child-process writers)."""

from __future__ import annotations

import numpy as np

from stad_core.banks import ActorRows, BankSpec

D = 16


def make_spec(kind: str = "long_term", dtype: str = "float16", **over: object) -> BankSpec:
    values: dict[str, object] = dict(
        kind=kind, feature_dim=D, dtype=dtype, backbone="slowfast_r50", checkpoint_sha256="0" * 64,
        detector_source="gt", detector_threshold=0.0, code_version="test",
    )
    if kind == "context":
        values["context_grid"] = (2, 3)
    values.update(over)
    return BankSpec(**values)  # type: ignore[arg-type]


def make_rows(
    seed: int = 0, first: int = 900, seconds: int = 120, max_per_second: int = 9, dim: int = D,
    shuffle: bool = True, dtype: str = "float16",
) -> ActorRows:
    """Random rows at integer keyframes first..first+seconds-1, 0..max_per_second actors each.

    Features come in ``dtype`` (make_spec's default: banks refuse features of another dtype).
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, max_per_second + 1, seconds)
    ts = np.repeat(np.arange(first, first + seconds), counts).astype(np.float64)
    r = len(ts)
    xy = rng.random((r, 2)) * 0.5
    boxes = np.concatenate([xy, xy + 0.4], axis=1).astype(np.float32)
    rows = ActorRows(
        np.maximum(rng.standard_normal((r, dim)), 0).astype(np.float32).astype(dtype),
        boxes, rng.random(r).astype(np.float32), ts, np.arange(r, dtype=np.int64), "gt",
    )
    if shuffle:
        rows = rows.take(rng.permutation(r))
    return rows


def write_one(args: tuple[str, str, int]) -> str:
    """Child-process writer: open the bank for append and write one video."""
    from storage.banks import open_bank

    uri, video_id, seed = args
    bank = open_bank(uri, "a", make_spec())
    bank.write_video(video_id, make_rows(seed, seconds=60))
    return video_id
