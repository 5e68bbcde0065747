"""The write rule of every bank (zarr or :class:`~stad_core.banks.DictBank`), in one place.

Features (and context maps) must arrive in the spec's dtype: a bank checks, it never casts them,
so the dtype has one source of truth (``BankSpec.dtype``) and the producer converts exactly once
(extraction produces rows in its writer's spec dtype). A mismatch is a :class:`BankError` naming
the bank, the video, the expected and the received dtype. The columns whose dtype the format fixes
(boxes, scores, timestamps, person ids: ``COLUMN_DTYPES``) are normalised to it.
"""

from __future__ import annotations

import numpy as np

from stad_core.banks.rows import COLUMN_DTYPES, ActorRows, ContextMaps, sort_rows
from stad_core.banks.spec import ROW_KINDS, BankError, BankSpec


def _check_dtype(values: np.ndarray, spec: BankSpec, where: str, what: str) -> None:
    if values.dtype != spec.numpy_dtype:
        raise BankError(
            f"{where}: {what} are {values.dtype}, the bank stores {spec.dtype} (its spec's dtype); "
            f"produce them in {spec.dtype} -- banks never cast"
        )


def check_rows(rows: ActorRows, spec: BankSpec, video_id: str, *, bank: str) -> ActorRows:
    """Validate rows against ``spec`` (bank named ``bank`` in errors); return them time-sorted.

    ``rows.features`` [R, D] must be ``spec.dtype``; boxes [R, 4], scores [R], timestamps [R] and
    person_ids [R] come back in their ``COLUMN_DTYPES``. Raises :class:`BankError` naming the bank,
    the video, the array and what was expected.
    """
    where = f"bank {bank}, video {video_id!r}"
    if spec.kind not in ROW_KINDS:
        raise BankError(f"{where}: a {spec.kind} bank stores context maps; use write_context")
    f = np.asarray(rows.features)
    if f.ndim != 2 or f.shape[1] != spec.feature_dim:
        raise BankError(
            f"{where}: features have shape {f.shape}, the bank expects [R, {spec.feature_dim}] "
            "(check the backbone/feature_dim of the bank spec)"
        )
    _check_dtype(f, spec, where, "features")
    r = f.shape[0]
    expected = {"boxes": (r, 4), "scores": (r,), "timestamps": (r,), "person_ids": (r,)}
    for name, shape in expected.items():
        got = np.shape(getattr(rows, name))
        if got != shape:
            raise BankError(f"{where}: {name} has shape {got}, expected {shape} for {r} rows")
    if not np.issubdtype(np.asarray(rows.person_ids).dtype, np.integer):
        raise BankError(f"{where}: person_ids must be integers (-1 for unknown)")
    if not np.all(np.isfinite(f)):
        raise BankError(f"{where}: features contain NaN/inf; refusing to store them")
    if r and not np.all(np.isfinite(rows.timestamps)):
        raise BankError(f"{where}: timestamps contain NaN/inf")
    columns = {name: np.asarray(getattr(rows, name), dt) for name, dt in COLUMN_DTYPES.items()}
    return sort_rows(ActorRows(f, **columns, source=str(rows.source)))


def check_context(maps: ContextMaps, spec: BankSpec, video_id: str, *, bank: str) -> ContextMaps:
    """Validate context maps [K, C, h, w] (``spec.dtype``) against ``spec``; return them time-sorted."""
    where = f"bank {bank}, video {video_id!r}"
    if spec.kind != "context" or spec.context_grid is None:
        raise BankError(f"{where}: a {spec.kind} bank stores actor rows; use write_video")
    m = np.asarray(maps.maps)
    h, w = spec.context_grid
    if m.ndim != 4 or m.shape[1:] != (spec.feature_dim, h, w):
        raise BankError(
            f"{where}: context maps have shape {m.shape}, the bank expects "
            f"[K, {spec.feature_dim}, {h}, {w}] (check context_grid/feature_dim)"
        )
    _check_dtype(m, spec, where, "context maps")
    if not np.all(np.isfinite(m)):
        raise BankError(f"{where}: context maps must be finite values")
    ts = np.asarray(maps.timestamps, COLUMN_DTYPES["timestamps"])
    if ts.shape != (m.shape[0],):
        raise BankError(f"{where}: timestamps have shape {ts.shape}, expected ({m.shape[0]},)")
    order = np.argsort(ts, kind="stable")
    return ContextMaps(m[order], ts[order])
