"""Workspace URIs -> zarr stores: plain paths and ``file://`` use zarr's LocalStore (atomic
renames), anything else goes through fsspec (``memory://``, ``s3://`` when s3fs is installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stad_core.banks import BankError


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI."""
    return Path(uri.removeprefix("file://")).expanduser()


def open_store(uri: str, *, read_only: bool, storage_options: dict[str, Any] | None = None) -> Any:
    """A zarr v3 store rooted at ``uri`` (the store is lazy: nothing is read here)."""
    from zarr.storage import FsspecStore, LocalStore

    if is_local(uri):
        path = local_path(uri)
        if read_only and not path.exists():
            raise BankError(f"no bank at {uri}: the directory does not exist")
        return LocalStore(path, read_only=read_only)
    try:
        return FsspecStore.from_url(uri, read_only=read_only, storage_options=storage_options)
    except (ImportError, ValueError) as exc:
        raise BankError(
            f"cannot open {uri}: {exc} (install the fsspec backend for this protocol, e.g. s3fs)"
        ) from None
