"""Zarr v3 feature banks on any fsspec URI: :func:`open_bank` and :class:`ZarrBank`.

Layout (full description in docs/bank-format.md)::

    <bank>/zarr.json                 attrs.stad_bank = {format, format_version, spec, codec, checksum, chunk_bytes}
    <bank>/videos/<video_id>/v<N>/   one *version* of a video; attrs.complete is set last
        features [row, channel]      chunks (chunk_rows, D): a 60 s window is 1-2 chunk reads
        boxes [row, coord] scores [row] timestamps [row] person_ids [row]
        second_offsets [second_edge] rows of second first_second+i are offsets[i]:offsets[i+1]
      (context banks: maps [keyframe, channel, y, x], timestamps [keyframe])

Writes are atomic from a reader's view: a (re)write goes to a fresh version ``v<N+1>``, sets
``complete=true`` last, then deletes older versions. Readers use the highest complete version, so a
writer killed at any point leaves the previous state readable and the video re-writable. Each
video's keys belong to one writer, so processes writing different videos never share a chunk.

Every chunk ends with a CRC32C of its stored bytes (``storage.codecs``), checked on each read: a
chunk that does not decode or fails its checksum is one :class:`BankError` naming the bank, video,
array and chunk (``storage.reading``). ``storage.verify`` checks every chunk and repairs by deletion.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import zarr
from zarr.core.sync import sync

from stad_core.ava.keys import check_video_id
from stad_core.banks import (
    COLUMN_DTYPES,
    ROW_KINDS,
    ActorRows,
    BankError,
    BankSpec,
    ContextMaps,
    SecondIndex,
    check_context,
    check_rows,
    second_index,
)
from storage.cache import ChunkCache
from storage.reading import RawChunks, RowReader, _Video, is_damage
from storage.codecs import CHECKSUM, DEFAULT_CODEC, compressors
from storage.uri import open_store

FORMAT = "stad-bank"
FORMAT_VERSION = 1
ROOT_KEY = "stad_bank"
DEFAULT_CHUNK_BYTES = 1 << 20
DEFAULT_CACHE_BYTES = 16 << 20
BankMode = Literal["r", "a", "w-"]
_VERSION = re.compile(r"^v(\d+)$")
_ROW_ARRAYS = ("features", "boxes", "scores", "timestamps", "person_ids", "second_offsets")


@dataclass(frozen=True)
class VideoInfo:
    """What a complete video version says about itself (its group attributes)."""

    video_id: str
    version: str
    rows: int  # rows (row banks) or keyframes (context banks)
    first_second: int
    num_seconds: int
    source: str
    meta: dict[str, Any]
    written_at: float


def validate_video_id(video_id: str) -> str:
    """Video ids become zarr node names: refuse the ones that cannot be (the rule ingest applies,
    ``stad_core.ava.keys.check_video_id``)."""
    try:
        return check_video_id(video_id)
    except ValueError as exc:
        raise BankError(str(exc)) from None


def chunk_rows_for(row_bytes: int, chunk_bytes: int, total_rows: int) -> int:
    """Rows per chunk: the largest power of two with ``rows * row_bytes <= chunk_bytes`` (>= 16),
    but never more than the video has (small videos get one tight chunk)."""
    rows = 16
    while rows * 2 * row_bytes <= chunk_bytes:
        rows *= 2
    return max(1, min(rows, total_rows))


def _list_dir(store: Any, prefix: str) -> list[str]:
    async def collect() -> list[str]:
        return [name async for name in store.list_dir(prefix)]

    try:
        return sync(collect())
    except FileNotFoundError:
        return []


class ZarrBank(RowReader):
    """A feature bank in a zarr v3 group; satisfies ``FeatureBankReader`` and ``FeatureBankWriter``.

    Open with :func:`open_bank`. Opening reads only the root metadata (O(1) in the number of
    videos); per-video state is loaded on first use and cached (call :meth:`refresh` to see
    rewrites made by other processes).
    """

    def __init__(
        self, uri: str, store: Any, root: Any, spec: BankSpec, attrs: Mapping[str, Any], mode: BankMode,
        cache_bytes: int,
    ) -> None:
        self.uri = uri
        self.mode = mode
        self._store = store
        self._root = root
        self._spec = spec
        self.codec: str = attrs.get("codec", DEFAULT_CODEC)
        # Banks from before checksums have no ``checksum`` attribute: the videos written into them
        # from now on get one (each array's own metadata says whether its chunks carry one).
        self.checksum: bool = attrs.get("checksum", CHECKSUM) != "none"
        self.chunk_bytes: int = int(attrs.get("chunk_bytes", DEFAULT_CHUNK_BYTES))
        self.cache = ChunkCache(cache_bytes)
        self._videos: dict[str, _Video] = {}

    def __repr__(self) -> str:
        return f"ZarrBank({self.uri!r}, kind={self._spec.kind}, D={self._spec.feature_dim}, {self._spec.dtype})"

    @property
    def spec(self) -> BankSpec:
        return self._spec

    @property
    def store(self) -> Any:
        return self._store

    # ------------------------------------------------------------------ versions and listing
    def _versions(self, video_id: str) -> list[int]:
        """Version numbers present for a video (complete or not), highest first."""
        names = _list_dir(self._store, f"videos/{video_id}/")
        found = (_VERSION.match(n) for n in names)
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def _complete(self, video_id: str) -> tuple[Any, VideoInfo] | None:
        """The group and info of the highest complete version, or None."""
        for n in self._versions(video_id):
            try:
                group = zarr.open_group(self._store, path=f"videos/{video_id}/v{n}", mode="r")
                attrs = group.attrs.asdict()
            except Exception:  # unreadable metadata = a writer died here: not complete
                continue
            if attrs.get("complete") is True:
                return group, VideoInfo(
                    video_id=video_id,
                    version=f"v{n}",
                    rows=int(attrs["rows"]),
                    first_second=int(attrs.get("first_second", 0)),
                    num_seconds=int(attrs.get("num_seconds", 0)),
                    source=str(attrs.get("source", "")),
                    meta=dict(attrs.get("meta", {})),
                    written_at=float(attrs.get("written_at", 0.0)),
                )
        return None

    def all_video_ids(self) -> list[str]:
        """Every video directory, complete or not (listing; O(videos))."""
        return sorted(n for n in _list_dir(self._store, "videos/") if n != "zarr.json")

    def videos(self) -> list[str]:
        """Ids of the complete videos, sorted (lists the bank: O(videos), done lazily)."""
        return [v for v in self.all_video_ids() if self._complete(v) is not None]

    def is_complete(self, video_id: str) -> bool:
        validate_video_id(video_id)
        return self._complete(video_id) is not None

    def video_info(self, video_id: str) -> VideoInfo:
        """Info of the current complete version; :class:`BankError` if there is none."""
        found = self._complete(validate_video_id(video_id))
        if found is None:
            raise BankError(self._unknown(video_id))
        return found[1]

    def video_meta(self, video_id: str) -> dict[str, Any]:
        return self.video_info(video_id).meta

    def _unknown(self, video_id: str) -> str:
        if self._versions(video_id):
            return f"video {video_id!r} in {self.uri} has no complete version (its writer did not finish; re-write it)"
        return f"video {video_id!r} is not in bank {self.uri} (see `stad bank videos {self.uri}`)"

    # ------------------------------------------------------------------ writing
    def _require_writable(self) -> None:
        if self.mode == "r":
            raise BankError(f"bank {self.uri} is open read-only; open it with mode='a' to write")

    def _new_version(self, video_id: str, attrs: dict[str, Any]) -> tuple[Any, int]:
        self._require_writable()
        existing = self._versions(video_id)
        n = (existing[0] + 1) if existing else 1
        group = self._root.create_group(f"videos/{video_id}/v{n}", attributes={"complete": False, **attrs})
        return group, n

    def _array(
        self, group: Any, name: str, data: np.ndarray, dtype: np.dtype, chunks: tuple[int, ...], dims: tuple[str, ...]
    ) -> None:
        """Create ``name`` with ``dtype`` (the spec's for features/maps, the format's for the rest)
        and fill it with ``data`` (already checked to have that dtype)."""
        if data.dtype != dtype:  # the checks ran first: reaching this is a bug, not bad input
            raise BankError(f"{self.uri}: {name} is {data.dtype}, its array is {dtype}")
        chunks = tuple(max(1, c) for c in chunks)
        arr = group.create_array(
            name, shape=data.shape, dtype=dtype, chunks=chunks,
            compressors=compressors(self.codec, checksum=self.checksum), fill_value=0, dimension_names=dims,
            # Store every chunk, even all-zero ones: then a missing chunk object means damage, which
            # `verify` can report (zarr would silently read it back as zeros). A runtime setting:
            # it applies to this handle only, so write through it.
            config={"write_empty_chunks": True},
        )
        if data.size:
            arr[...] = data

    def _finish(self, video_id: str, group: Any, n: int, attrs: dict[str, Any]) -> None:
        # The commit point: one metadata write (atomic rename on local disks, one PUT on object stores).
        group.attrs.update({**attrs, "complete": True, "written_at": time.time()})
        for old in self._versions(video_id):
            if old != n:
                self._delete(f"videos/{video_id}/v{old}")
        self._forget(video_id)

    def _delete(self, path: str) -> None:
        try:
            del self._root[path]
        except KeyError:
            pass

    def _forget(self, video_id: str) -> None:
        self._videos.pop(video_id, None)
        self.cache.drop(lambda key: key[0][0] == video_id)

    def write_video(self, video_id: str, rows: ActorRows, *, meta: Mapping[str, Any] | None = None) -> None:
        """Write (or replace) one video's rows; readers see it only once it is complete.

        ``rows`` are checked against the spec (features must be ``spec.dtype``: a
        :class:`BankError` otherwise, see ``stad_core.banks.checks``) and time-sorted.
        """
        validate_video_id(video_id)
        rows = check_rows(rows, self._spec, video_id, bank=self.uri)
        index = second_index(rows.timestamps)
        r, d = rows.features.shape
        attrs = {
            "rows": r, "first_second": index.first_second, "num_seconds": index.num_seconds,
            "source": rows.source, "meta": dict(meta or {}),
        }
        group, n = self._new_version(video_id, {"rows": r})
        cr = chunk_rows_for(d * rows.features.itemsize, self.chunk_bytes, r)
        self._array(group, "features", rows.features, self._spec.numpy_dtype, (cr, d), ("row", "channel"))
        self._array(group, "boxes", rows.boxes, COLUMN_DTYPES["boxes"], (r, 4), ("row", "coord"))
        self._array(group, "scores", rows.scores, COLUMN_DTYPES["scores"], (r,), ("row",))
        self._array(group, "timestamps", rows.timestamps, COLUMN_DTYPES["timestamps"], (r,), ("row",))
        self._array(group, "person_ids", rows.person_ids, COLUMN_DTYPES["person_ids"], (r,), ("row",))
        self._array(group, "second_offsets", index.offsets, np.dtype(np.int64), (len(index.offsets),),
                    ("second_edge",))
        self._finish(video_id, group, n, attrs)

    def write_context(self, video_id: str, maps: ContextMaps, *, meta: Mapping[str, Any] | None = None) -> None:
        """Write (or replace) one video's context maps [K, C, h, w] (in ``spec.dtype``, checked)."""
        validate_video_id(video_id)
        maps = check_context(maps, self._spec, video_id, bank=self.uri)
        k = len(maps)
        per_map = int(np.prod(maps.maps.shape[1:])) * maps.maps.itemsize
        ck = chunk_rows_for(per_map, self.chunk_bytes, k) if per_map * 16 <= self.chunk_bytes else max(
            1, min(k, self.chunk_bytes // max(per_map, 1))
        )
        first = int(np.floor(maps.timestamps[0])) if k else 0
        last = int(np.floor(maps.timestamps[-1])) if k else -1
        attrs = {"rows": k, "first_second": first, "num_seconds": last - first + 1, "source": "context",
                 "meta": dict(meta or {})}
        group, n = self._new_version(video_id, {"rows": k})
        self._array(group, "maps", maps.maps, self._spec.numpy_dtype, (ck, *maps.maps.shape[1:]),
                    ("keyframe", "channel", "y", "x"))
        self._array(group, "timestamps", maps.timestamps, COLUMN_DTYPES["timestamps"], (k,), ("keyframe",))
        self._finish(video_id, group, n, attrs)

    def delete_video(self, video_id: str) -> None:
        """Remove every version of a video."""
        self._require_writable()
        self._delete(f"videos/{validate_video_id(video_id)}")
        self._forget(video_id)

    def stale_versions(self) -> list[str]:
        """Paths of versions that are not the current one (left by killed writers)."""
        stale = []
        for vid in self.all_video_ids():
            found = self._complete(vid)
            current = found[1].version if found else None
            stale += [f"videos/{vid}/v{n}" for n in self._versions(vid) if f"v{n}" != current]
        return stale

    def gc(self) -> list[str]:
        """Delete versions left behind by killed writers; returns what was deleted.

        Only run it when no writer is active (an in-progress version looks the same as a dead one).
        """
        self._require_writable()
        stale = self.stale_versions()
        for path in stale:
            self._delete(path)
        return stale

    # ------------------------------------------------------------------ reading
    def _load_small(self, state: _Video) -> dict[str, np.ndarray]:
        return {k: self._read(state.info, self._open_array(state.group, k, state.info))
                for k in ("boxes", "scores", "person_ids")}

    def _open_array(self, group: Any, name: str, info: VideoInfo) -> Any:
        """Array ``name`` of a complete version; unreadable metadata is damage, named like a chunk's."""
        try:
            return group[name]
        except Exception as exc:
            if not (is_damage(exc) or isinstance(exc, (KeyError, FileNotFoundError))):
                raise
            raise self.damaged(info, name, f"{group.path}/{name}/zarr.json", exc) from None

    def refresh(self) -> None:
        """Forget cached per-video state and chunks (to see other processes' rewrites)."""
        self._videos.clear()
        self.cache.clear()

    def _video(self, video_id: str, want: Literal["rows", "context"] = "rows") -> _Video:
        if want == "rows" and self._spec.kind not in ROW_KINDS:
            raise BankError(f"{self.uri} is a {self._spec.kind} bank: it has no actor rows (use context())")
        if want == "context" and self._spec.kind != "context":
            raise BankError(f"{self.uri} is a {self._spec.kind} bank: it has no context maps")
        state = self._videos.get(video_id)
        if state is not None:
            return state
        found = self._complete(validate_video_id(video_id))
        if found is None:
            raise BankError(self._unknown(video_id))
        group, info = found
        timestamps = np.asarray(self._read(info, self._open_array(group, "timestamps", info)), np.float64)
        if want == "rows":
            offsets = self._read(info, self._open_array(group, "second_offsets", info))
            index = SecondIndex(info.first_second, np.asarray(offsets, np.int64))
            big = self._open_array(group, "features", info)
        else:
            index = SecondIndex(0, np.zeros(1, np.int64))
            big = self._open_array(group, "maps", info)
        # Every chunk was stored (write_empty_chunks), so a missing one is an error, not zeros.
        big = big.with_config({"read_missing_chunks": False})
        state = _Video(
            info, index, timestamps, big, int(big.chunks[0]), (video_id, info.version), 0, group,
            raw=RawChunks.for_array(big),
        )
        self._videos[video_id] = state
        return state

    # ------------------------------------------------------------------ browsing
    def open_dataset(self, video_id: str | None = None) -> Any:
        """Complete videos (one, or all when ``video_id`` is None) as one lazy ``xarray.Dataset``.

        Row banks (long-term, actor-context): dims ``row``, ``channel``, ``corner``; variables
        ``features [row, channel]``, ``boxes [row, corner]`` (corners ``x1 y1 x2 y2``), ``scores [row]``;
        ``row`` is indexed by ``(video, timestamp, person_id)`` (person ids are track ids for ``stad
        infer`` banks), so ``ds.sel(video="v", timestamp=8, person_id=2)`` or
        ``ds.sel(row=ds.timestamp == 8)`` select rows. Context banks: dims ``keyframe``, ``channel``,
        ``y``, ``x``; ``keyframe`` indexed by ``(video, timestamp)``. Features stay lazy (dask) until
        read; the per-row columns are loaded for the index.
        """
        import numpy as np
        import xarray as xr

        ids = [video_id] if video_id is not None else self.videos()
        if not ids:
            raise BankError(f"{self.uri} has no complete video")
        parts = []
        for vid in ids:
            info = self.video_info(vid)
            raw = xr.open_zarr(self._store, group=f"videos/{vid}/{info.version}", consolidated=False, zarr_format=3)
            if self.spec.kind == "context":
                ds = raw.rename({"timestamps": "timestamp"})
                ds = ds.assign_coords(timestamp=ds.timestamp.compute(), video=("keyframe", np.full(ds.sizes["keyframe"], vid)))
            else:
                ds = raw.drop_vars("second_offsets").rename({"coord": "corner", "timestamps": "timestamp",
                                                              "person_ids": "person_id"})
                ds = ds.assign_coords(timestamp=ds.timestamp.compute(), person_id=ds.person_id.compute(),
                                      video=("row", np.full(ds.sizes["row"], vid)))
            parts.append(ds.drop_attrs() if len(ids) > 1 else ds)
        dim = "keyframe" if self.spec.kind == "context" else "row"
        out = xr.concat(parts, dim=dim) if len(parts) > 1 else parts[0]
        coords: dict[str, Any] = {"channel": np.arange(self.spec.feature_dim)}
        if dim == "row":
            coords["corner"] = ["x1", "y1", "x2", "y2"]
        out = out.assign_coords(coords).set_index({dim: ["video", "timestamp"] + (["person_id"] if dim == "row" else [])})
        return out.assign_attrs(kind=self.spec.kind, bank=self.uri, dtype=self.spec.dtype)

    def arrays(self, video_id: str) -> Iterator[tuple[str, Any]]:
        """(name, zarr array) of the current version of a video."""
        info = self.video_info(video_id)
        group = zarr.open_group(self._store, path=f"videos/{video_id}/{info.version}", mode="r")
        yield from sorted(group.arrays())

    def sizes(self, video_id: str) -> tuple[int, int]:
        """(uncompressed bytes, bytes stored) of a video's current version."""
        raw = stored = 0
        for _, arr in self.arrays(video_id):
            raw += arr.nbytes
            stored += arr.nbytes_stored()
        return raw, stored


#: Re-opens of a bank another writer is creating at the same moment (see ``open_bank``).
_CREATE_RETRIES = 5

def open_bank(
    uri: str,
    mode: BankMode = "r",
    spec: BankSpec | None = None,
    *,
    codec: str = DEFAULT_CODEC,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    checksum: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> ZarrBank:
    """Open (or create) the bank at ``uri`` (path, ``file://``, ``memory://``, ``s3://``, ...).

    mode ``"r"``: read only; ``"a"``: read/write, created if absent (needs ``spec``); ``"w-"``:
    create, failing if a bank exists. A given ``spec`` must equal the stored one -- otherwise
    :class:`BankError` lists the differing fields. ``codec``/``chunk_bytes``/``checksum`` apply when
    creating (``checksum=False``: chunks without a CRC32C, for measuring what the checksum costs).
    Reads one small metadata document: O(1) in the number of videos.
    """
    if mode not in ("r", "a", "w-"):
        raise BankError(f"mode must be 'r', 'a' or 'w-', not {mode!r}")
    compressors(codec)  # validate the name before touching the store
    store = open_store(uri, read_only=mode == "r", storage_options=storage_options)
    for attempt in range(_CREATE_RETRIES + 1):
        # Two writers creating one bank at once (concurrent extracts): zarr's exists-check and create
        # race, and a reader may see the other's "videos" group before its attributes. Both are
        # transient: the other writer's bank is complete a moment later.
        try:
            root = zarr.open_group(store, mode="r" if mode == "r" else "a", zarr_format=3)
        except zarr.errors.ContainsGroupError:
            if attempt == _CREATE_RETRIES:
                raise
            time.sleep(0.1 * (attempt + 1))
            continue
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError,
                zarr.errors.ContainsArrayError):
            raise BankError(f"no bank at {uri} (create one with mode='a' and a spec)") from None
        if (root.attrs.get(ROOT_KEY) is None and mode != "r" and list(root.keys()) == ["videos"]
                and attempt < _CREATE_RETRIES):
            time.sleep(0.1 * (attempt + 1))
            continue
        break
    attrs = root.attrs.get(ROOT_KEY)
    if attrs is None:
        if mode == "r":
            raise BankError(f"{uri} is not a stad feature bank (no '{ROOT_KEY}' attributes)")
        if list(root.keys()) or root.attrs.asdict():
            raise BankError(f"{uri} holds other zarr data; choose an empty location for a new bank")
        if spec is None:
            raise BankError(f"creating a bank at {uri} needs a BankSpec")
        attrs = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec.to_attrs(),
            "codec": codec, "checksum": CHECKSUM if checksum else "none", "chunk_bytes": int(chunk_bytes),
            "created_at": time.time(),
        }
        root.attrs.update({ROOT_KEY: attrs})
        root.require_group("videos")  # created once here (require: a concurrent creator may have made it)
        return ZarrBank(uri, store, root, spec, attrs, mode, cache_bytes)
    if mode == "w-":
        raise BankError(f"a bank already exists at {uri}; open it with mode='a' to append")
    if attrs.get("format") != FORMAT or int(attrs.get("format_version", 0)) > FORMAT_VERSION:
        raise BankError(
            f"{uri}: bank format {attrs.get('format')} v{attrs.get('format_version')} is not readable by "
            f"this stad (reads {FORMAT} v{FORMAT_VERSION}); upgrade stad"
        )
    if attrs.get("layout") == "packed":
        raise BankError(f"{uri} is a packed (read-only) bank: open it with open_reader() or storage.pack.open_packed()")
    stored = BankSpec.from_attrs(attrs["spec"])
    if spec is not None and spec != stored:
        raise BankError(
            f"bank {uri} was written with a different spec; differing fields: "
            + "; ".join(stored.diff(spec))
            + " (write to a new bank, or use the stored spec)"
        )
    return ZarrBank(uri, store, root, stored, attrs, mode, cache_bytes)
