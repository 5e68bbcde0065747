"""The fine-feature bank: one row per feature step of a video, the depths side by side.

A fine bank is a row bank (``BankSpec.kind = "fine"``): row s of a video is feature step s,
``features[s] = concat(coarse frame, depth_1, depth_2, ...)``, ``timestamps[s]`` the step's centre
second, boxes the whole frame, ``person_ids`` -1. The column layout (which columns are which depth)
is part of the spec, in ``roi_recipe``: ``fine;coarse=192;slow.res4=128;slow.res5=256``;
``clip_num_frames`` / ``clip_stride`` are the backbone window and the step (frames per row).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from stad_core.banks import ActorRows, BankSpec
from stad_core.errors import StadError

PREFIX = "fine"


def layout_recipe(dims: Mapping[str, int]) -> str:
    return ";".join([PREFIX, *(f"{name}={dim}" for name, dim in dims.items())])


def layout(spec: BankSpec) -> dict[str, slice]:
    """Depth name -> column slice of the bank's features."""
    parts = spec.roi_recipe.split(";")
    if spec.kind != "fine" or parts[0] != PREFIX:
        raise StadError(f"not a fine bank (kind {spec.kind!r}, recipe {spec.roi_recipe!r})")
    out: dict[str, slice] = {}
    at = 0
    for part in parts[1:]:
        name, _, dim = part.partition("=")
        out[name] = slice(at, at + int(dim))
        at += int(dim)
    if at != spec.feature_dim:
        raise StadError(f"fine bank layout {spec.roi_recipe!r} covers {at} columns, the bank has {spec.feature_dim}")
    return out


def fine_spec(dims: Mapping[str, int], *, dtype: str, backbone: str, checkpoint_sha256: str, clip_frames: int,
              step: int, code_version: str) -> BankSpec:
    return BankSpec(kind="fine", feature_dim=sum(dims.values()), dtype=dtype, backbone=backbone,  # type: ignore[arg-type]
                    checkpoint_sha256=checkpoint_sha256, roi_recipe=layout_recipe(dims), clip_num_frames=clip_frames,
                    clip_stride=step, detector_source="none", code_version=code_version)


def to_rows(features: Mapping[str, np.ndarray], spec: BankSpec, fps: float) -> ActorRows:
    """Per-depth ``[S, D_k]`` -> the video's rows in the bank's dtype and column order."""
    cols = layout(spec)
    matrix = np.concatenate([np.asarray(features[name], np.float32) for name in cols], axis=1)
    s = matrix.shape[0]
    step = spec.clip_stride
    times = (np.arange(s) * step + step / 2) / fps
    return ActorRows(matrix.astype(spec.numpy_dtype), np.tile(np.array([0, 0, 1, 1], np.float32), (s, 1)),
                     np.ones(s, np.float32), times.astype(np.float64), np.full(s, -1, np.int64), source="fine")


def from_rows(rows: ActorRows, spec: BankSpec) -> dict[str, np.ndarray]:
    """A video's rows -> per-depth float32 ``[S, D_k]``."""
    f = np.asarray(rows.features, np.float32)
    return {name: f[:, sl] for name, sl in layout(spec).items()}
