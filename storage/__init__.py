"""stad storage: zarr feature banks, parquet tables, checkpoints and workspace URIs.

May import ``stad_core`` (types only) but never Prefect.

Feature banks (see docs/bank-format.md)::

    from storage import open_bank, open_reader
    bank = open_bank("work/banks/lfb_train", "a", spec)   # per-video layout, read/write
    bank.write_video("-5KQ66BBWC4", rows)                   # atomic per video
    reader = open_reader("work/banks/lfb_train")            # any layout, read-only
    feats, mask = reader.gather_windows([("-5KQ66BBWC4", 902.0)], training=True, rng=rng)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # zarr is imported lazily: `import storage` stays cheap
    from stad_core.banks import FeatureBankReader

__all__ = ["open_bank", "open_packed", "open_reader", "pack_bank"]


def open_reader(uri: str, *, cache_bytes: int = 16 << 20) -> FeatureBankReader:
    """Open any bank read-only (per-video or packed layout), as a ``FeatureBankReader``."""
    import zarr

    from storage.banks import ROOT_KEY, open_bank
    from storage.pack import open_packed
    from storage.uri import open_store

    try:
        attrs = zarr.open_group(open_store(uri, read_only=True), mode="r", zarr_format=3).attrs.get(ROOT_KEY) or {}
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        attrs = {}
    if attrs.get("layout") == "packed":
        return open_packed(uri, cache_bytes=cache_bytes)
    return open_bank(uri, "r", cache_bytes=cache_bytes)


def __getattr__(name: str):  # noqa: ANN202 - lazy re-exports
    if name == "open_bank":
        from storage.banks import open_bank

        return open_bank
    if name in ("open_packed", "pack_bank"):
        from storage import pack

        return getattr(pack, name)
    raise AttributeError(name)
