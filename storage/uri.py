"""Workspace URIs: one home for joining, resolving and opening them.

A URI is a local path (``/data/ws``, ``ws``, ``file:///data/ws``) or an fsspec URL (``memory://``,
``s3://bucket/ws`` when s3fs is installed). Zarr stores: plain paths and ``file://`` use zarr's
LocalStore (atomic renames), anything else goes through fsspec.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from stad_core.banks import BankError
from stad_core.errors import StadError


def is_local(uri: str) -> bool:
    return "://" not in str(uri) or str(uri).startswith("file://")


def join(root: str, *parts: str) -> str:
    """Join URI parts with ``/`` (works for local paths and fsspec URLs alike)."""
    return posixpath.join(str(root).rstrip("/") or "/", *parts)


def fs_for(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and in-filesystem path for ``uri``."""
    return url_to_fs(str(uri))


def local_path(uri: str) -> Path:
    """A local filesystem path for ``uri``, for code that needs real files (video codecs, torch.save).

    Raises a StadError naming the URI when it lives on an object store.
    """
    if not is_local(uri):
        raise StadError(f"{uri}: this step needs a local (or mounted shared) path, not {str(uri).split('://')[0]}://")
    return Path(str(uri).removeprefix("file://")).expanduser()


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
