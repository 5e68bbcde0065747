"""Per-video leases: two runs on one workspace split the videos, and each video is computed once.

A writer takes ``<stage uri>/_leases/<video>.json`` by creating it exclusively (``O_EXCL`` on a local
disk, mode ``"xb"`` on an fsspec store), renews its expiry while it works, and removes it when the
video is done. A lease whose expiry has passed belongs to a dead holder (``kill -9``, a lost
machine) and may be broken by the next writer. Whoever finds a live lease waits for the video's done
marker instead of computing it again.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from storage.uri import fs_for, is_local, join, local_path

LEASE_DIR = "_leases"
TTL_SECONDS = float(os.environ.get("STAD_LEASE_TTL", "60"))
OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_uri(stage_uri: str, video_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in video_id)
    return join(stage_uri, LEASE_DIR, f"{safe}.json")


@dataclass(frozen=True)
class LeaseInfo:
    owner: str
    expires: float

    @property
    def alive(self) -> bool:
        """Not expired, and (when held on this machine) its process still runs."""
        if self.expires <= time.time():
            return False
        host, _, rest = self.owner.partition(":")
        pid = rest.partition(":")[0]
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return False  # killed: no need to wait for the expiry
            except PermissionError:
                pass
        return True


def read_lease(uri: str) -> LeaseInfo | None:
    fs, path = fs_for(uri)
    try:
        with fs.open(path, "rb") as fh:
            data = json.loads(fh.read())
        return LeaseInfo(str(data["owner"]), float(data["expires"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, OSError):
        return LeaseInfo("?", 0.0)  # torn or foreign: treat as expired


def _payload(ttl: float) -> bytes:
    return json.dumps({"owner": OWNER, "expires": time.time() + ttl}).encode()


def _create_exclusive(uri: str, data: bytes) -> bool:
    """Create ``uri`` with ``data`` unless it exists (atomically); False when it exists."""
    if is_local(uri):
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a unique name, then hard-linked into place: the link fails if the lease
        # exists, and a reader never sees a half-written one (which it would take for a dead holder's).
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True
    fs, path = fs_for(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    try:
        with fs.open(path, "xb") as fh:
            fh.write(data)
    except FileExistsError:
        return False
    return True


def try_acquire(stage_uri: str, video_id: str, ttl: float = TTL_SECONDS) -> bool:
    """Take the video's lease; break it first when its holder's expiry has passed."""
    uri = lease_uri(stage_uri, video_id)
    if _create_exclusive(uri, _payload(ttl)):
        return True
    held = read_lease(uri)
    if held is not None and held.alive:
        return False
    release(stage_uri, video_id, force=True)  # a dead holder's lease
    return _create_exclusive(uri, _payload(ttl))


def release(stage_uri: str, video_id: str, *, force: bool = False) -> None:
    """Remove the lease (only our own unless ``force``)."""
    uri = lease_uri(stage_uri, video_id)
    held = read_lease(uri)
    if held is None or (held.owner != OWNER and not force):
        return
    fs, path = fs_for(uri)
    try:
        fs.rm(path)
    except FileNotFoundError:
        pass


def _renew(uri: str, ttl: float) -> None:
    fs, path = fs_for(uri)
    with fs.open(path, "wb") as fh:  # our own lease: a plain overwrite is enough
        fh.write(_payload(ttl))


@contextmanager
def holding(stage_uri: str, video_id: str, ttl: float = TTL_SECONDS) -> Iterator[None]:
    """Keep an acquired lease alive while the block runs (renewed every ttl/3), then release it."""
    stop = threading.Event()
    uri = lease_uri(stage_uri, video_id)

    def renew() -> None:
        while not stop.wait(ttl / 3):
            _renew(uri, ttl)

    thread = threading.Thread(target=renew, name=f"lease-{video_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        release(stage_uri, video_id)
