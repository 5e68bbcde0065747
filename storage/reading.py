"""Read side shared by the bank layouts (per-video groups, packed arrays): chunk-cached row
gathers, windows, keyframe rows and context maps. A layout supplies ``_video(video_id)``.

Every chunk read goes through one of two guarded paths (:meth:`RowReader._load_many` for feature
chunks, :meth:`RowReader._read` for whole-array reads), so a chunk that does not decode -- a
CRC32C mismatch, a codec error, a truncated blosc/zstd frame -- surfaces as one :class:`BankError`
naming the bank, the video, the array and the chunk, and how to recover.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import google_crc32c  # what zarr's Crc32cCodec computes (hardware CRC32C); a zarr dependency
import numpy as np
from zarr.core.sync import sync
from zarr.errors import ChunkNotFoundError

from stad_core.banks import (
    ActorRows,
    BankError,
    BankSpec,
    BankWindow,
    ContextMaps,
    TIME_TOLERANCE,
    SecondIndex,
    WindowBatch,
    assemble_window,
    find_keyframe,
    plan_window,
    window_rng,
)
from stad_core.progress import ProgressFn, report
from storage.cache import ChunkCache


#: Rows copied per step when scattering a chunk into a batch (bounds the temporary copy).
_SCATTER_ROWS = 1024
#: Chunks fetched together in a batched gather (concurrency for object stores vs memory held).
_FETCH_CHUNKS = 16


#: Failures that say nothing about the stored bytes: a missing chunk (reported as gone), I/O errors,
#: our own errors, and programming errors (a bug must not read as "re-extract this video").
_NOT_DAMAGE = (BankError, ChunkNotFoundError, OSError, MemoryError, asyncio.CancelledError, TypeError,
               AttributeError, NameError, ImportError, AssertionError)


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc``, raised while reading a chunk, means the stored bytes do not decode.

    Checksum mismatches (ValueError), codec errors (RuntimeError), truncated frames (SystemError,
    ValueError) are damage; a missing chunk (:class:`ChunkNotFoundError`, FileNotFoundError), an I/O
    failure (OSError: a network or disk error says nothing about the bytes) and our own errors are not.
    """
    return isinstance(exc, Exception) and not isinstance(exc, _NOT_DAMAGE)


def writer_stage(kind: str) -> str:
    """The stage that writes banks of ``kind`` (what to re-run after a repair)."""
    return {"actor_context": "acfb", "fine": "temporal_extract"}.get(kind, "extract")


def chunk_name(array: Any, c: int) -> str:
    """Path of chunk ``c`` (along the first axis) of ``array`` inside its store, e.g.
    ``videos/a/v1/features/c/3/0``; for a sharded array, the shard object and the inner chunk."""
    ndim = len(array.shape)
    shards = getattr(array, "shards", None)
    prefix = array.path.rstrip("/") + "/" if array.path else ""
    if shards is None:
        return prefix + array.metadata.encode_chunk_key((c,) + (0,) * (ndim - 1))
    per_shard = max(1, int(shards[0]) // int(array.chunks[0]))
    key = array.metadata.encode_chunk_key((c // per_shard,) + (0,) * (ndim - 1))
    return f"{prefix}{key} (inner chunk {c % per_shard})"


def find_damage(array: Any, start: int, stop: int) -> tuple[int, BaseException] | None:
    """The first chunk of rows ``[start, stop)`` of ``array`` that does not decode, read one chunk at
    a time (the slow diagnosis after a multi-chunk read failed): (chunk number, its error) or None."""
    step = max(1, int(array.chunks[0]))
    for c in range(start // step, -(-stop // step)):
        try:
            array[c * step : min((c + 1) * step, array.shape[0])]
        except Exception as exc:  # noqa: BLE001 - classified right here
            if is_damage(exc):
                return c, exc
    return None


class RawChunks:
    """Reads whole chunks of one unsharded zarr v3 array without zarr's per-chunk machinery.

    Only for the codec chains the bank writes (little-endian bytes, one numcodecs-decodable
    compressor or none, then an optional CRC32C checksum): the chunk object is fetched as bytes (a
    plain file read on local disks, one batched ``store.get`` otherwise), its checksum checked, and
    decoded with numcodecs. Training batches touch ~2 chunks per keyframe at random, and zarr's
    generic path costs about as much CPU per chunk as the decompression itself, so this path
    roughly halves the read cost. ``for_array`` returns None
    for anything else, and the caller uses zarr.
    """

    def __init__(self, array: Any, decoder: Any, checksum: bool = False) -> None:
        self.array = array
        self.decoder = decoder  # numcodecs codec, or None for uncompressed chunks
        self.checksum = checksum  # chunks end with a little-endian CRC32C of the bytes before it
        self.store = array.store
        self.prefix = array.path.rstrip("/") + "/"
        self.root = getattr(self.store, "root", None) if type(self.store).__name__ == "LocalStore" else None
        self.chunk_shape = tuple(array.chunks)
        self.dtype = np.dtype(array.dtype)
        self.rows = int(array.shape[0])

    @classmethod
    def for_array(cls, array: Any) -> RawChunks | None:
        from numcodecs import Blosc, Zstd
        from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ZstdCodec

        meta = array.metadata
        codecs = list(getattr(meta, "codecs", ()))
        checksum = bool(codecs) and isinstance(codecs[-1], Crc32cCodec)
        if checksum:
            codecs = codecs[:-1]
        if (
            getattr(meta, "zarr_format", None) != 3
            or sys.byteorder != "little"
            or not codecs
            or not isinstance(codecs[0], BytesCodec)
            or getattr(codecs[0].endian, "value", codecs[0].endian) not in ("little", None)
            or len(codecs) > 2
        ):
            return None
        if len(codecs) == 1:
            return cls(array, None, checksum)
        if isinstance(codecs[1], BloscCodec):
            return cls(array, Blosc(), checksum)  # blosc frames describe themselves
        if isinstance(codecs[1], ZstdCodec):
            return cls(array, Zstd(), checksum)
        return None

    def key(self, c: int) -> str:
        index = (c,) + (0,) * (len(self.chunk_shape) - 1)
        return self.prefix + self.array.metadata.encode_chunk_key(index)

    @staticmethod
    def read_many(wanted: Sequence[tuple[RawChunks, int]]) -> list[bytes]:
        """Bytes of each chunk object; FileNotFoundError when one is missing."""
        out: list[bytes | None] = [None] * len(wanted)
        remote = []
        for i, (raw, c) in enumerate(wanted):
            if raw.root is not None:
                with open(f"{raw.root}/{raw.key(c)}", "rb") as f:
                    out[i] = f.read()
            else:
                remote.append(i)
        if remote:
            from zarr.core.buffer import default_buffer_prototype

            proto = default_buffer_prototype()

            async def fetch() -> list[Any]:
                return await asyncio.gather(*(wanted[i][0].store.get(wanted[i][0].key(wanted[i][1]), proto)
                                              for i in remote))

            for i, buf in zip(remote, sync(fetch()), strict=True):
                if buf is None:
                    raise FileNotFoundError(wanted[i][0].key(wanted[i][1]))
                out[i] = buf.to_bytes()
        return out  # type: ignore[return-value]

    def decode(self, blob: bytes, c: int) -> np.ndarray:
        """Chunk ``c`` as [rows, ...]; edge chunks are stored full size, so cut to the array.

        Raises (ValueError, RuntimeError, SystemError, ...) when the bytes do not decode or fail
        their checksum; the caller names the chunk (:meth:`RowReader._load_many`)."""
        data: Any = blob
        if self.checksum:
            if len(blob) < 4:
                raise ValueError(f"chunk of {len(blob)} bytes is shorter than its checksum")
            data = np.frombuffer(blob, np.uint8, len(blob) - 4)  # a view: no copy of the chunk
            stored = int.from_bytes(blob[-4:], "little")
            computed = google_crc32c.value(data)
            if stored != computed:
                raise ValueError(f"CRC32C checksum mismatch (stored {stored:08x}, computed {computed:08x})")
        if self.decoder is not None:
            data = self.decoder.decode(data)
        arr = np.frombuffer(data, self.dtype).reshape(self.chunk_shape)
        start = c * self.chunk_shape[0]
        return arr[: max(0, min(self.chunk_shape[0], self.rows - start))]


@dataclass
class _Video:
    """Reader-side state of one video, loaded once: small arrays in RAM, features left on disk."""

    info: Any  # VideoInfo: video_id, version, rows, source, ...
    index: SecondIndex
    timestamps: np.ndarray  # [R] float64 (row banks) or [K] (context banks)
    big: Any  # zarr array: features [.., D] or maps [.., C, h, w]
    chunk: int  # rows (or keyframes) per chunk of ``big``
    cache_key: Hashable  # chunks of equal cache_key are shared (packed banks share across videos)
    base: int = 0  # the video's first row in ``big`` (0 for per-video arrays)
    group: Any = None  # per-video zarr group (None for packed banks)
    small: dict[str, np.ndarray] | None = None  # boxes/scores/person_ids, loaded on demand
    raw: RawChunks | None = None  # fast chunk reader when the array's codecs allow it


class RowReader:
    """Reading methods of :class:`~stad_core.banks.FeatureBankReader` over zarr arrays.

    Subclasses provide ``spec``, ``cache`` (a :class:`ChunkCache`), ``_video(video_id, want)``
    and ``_load_small(state)``.
    """

    cache: ChunkCache
    uri: str

    @property
    def spec(self) -> BankSpec:
        raise NotImplementedError

    def _video(self, video_id: str, want: Literal["rows", "context"] = "rows") -> _Video:
        raise NotImplementedError

    def _load_small(self, state: _Video) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def videos(self) -> list[str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ damage
    def recovery(self, video_id: str) -> str:
        """How to rebuild ``video_id``'s data (the stage that wrote this kind of bank)."""
        stage = writer_stage(self.spec.kind)
        return (
            f"re-extract that video: `stad bank repair {self.uri} {video_id}` deletes its group, then re-run "
            f"`stad run {stage}` (it redoes only that video); or `stad run {stage} --force` redoes every video"
        )

    def damaged(self, info: Any, array: str, chunk: str, exc: BaseException) -> BankError:
        """The one error for a chunk that does not decode (``info``: the video's VideoInfo)."""
        return BankError(
            f"damaged chunk in bank {self.uri}: video {info.video_id!r} ({info.version}), array {array!r}, "
            f"chunk {chunk} -- {type(exc).__name__}: {str(exc).rstrip('.')}. "
            f"To recover, {self.recovery(info.video_id)} (`stad bank verify {self.uri}` lists every damaged chunk)"
        )

    def _gone(self, infos: Sequence[Any]) -> BankError:
        names = sorted({f"{i.video_id!r} ({i.version})" for i in infos})
        return BankError(
            f"chunks of {', '.join(names)} are gone -- the video was re-written or deleted since this "
            "reader loaded it (call refresh()), or the bank is damaged (run `stad bank verify`)"
        )

    def _read(self, info: Any, array: Any, rows: slice | None = None) -> np.ndarray:
        """``array[rows]`` (default: all rows) as numpy, for ``info``'s video; a chunk that does not
        decode raises one :class:`BankError` naming it (found by re-reading chunk by chunk)."""
        sel = slice(0, array.shape[0]) if rows is None else rows
        try:
            return np.asarray(array[sel])
        except (ChunkNotFoundError, FileNotFoundError):
            raise self._gone([info]) from None
        except Exception as exc:
            if not is_damage(exc):
                raise
            start, stop, _ = sel.indices(array.shape[0])
            c, cause = find_damage(array, start, stop) or (start // max(1, int(array.chunks[0])), exc)
            raise self.damaged(info, array.basename, chunk_name(array, c), cause) from None

    def preload(self, videos: Sequence[str] | None = None, *, on_progress: ProgressFn | None = None) -> int:
        """Load the small per-video state (offsets, timestamps) of ``videos`` (default: all) now,
        e.g. at the start of an epoch, instead of on each video's first window. Returns the count."""
        ids = list(videos) if videos is not None else self.videos()
        for i, vid in enumerate(ids):
            self._video(vid)
            report(on_progress, i + 1, len(ids))
        return len(ids)

    def _load(self, state: _Video, c: int) -> np.ndarray:
        """Read and decode chunk ``c`` of ``state.big`` (no cache)."""
        return self._load_many([(state, c)])[0]

    def _load_many(self, wanted: Sequence[tuple[_Video, int]]) -> list[np.ndarray]:
        """Read and decode several chunks: [chunk rows, ...] each (the last one of an array cut to
        its real length). Plain chunks go through :class:`RawChunks` (one batched read, then
        numcodecs); anything else (sharded packs, other codec chains) through zarr, concurrently."""
        out: list[np.ndarray | None] = [None] * len(wanted)
        raw = [i for i, (s, _) in enumerate(wanted) if s.raw is not None]
        try:
            pairs = [(wanted[i][0].raw, wanted[i][1]) for i in raw]
            blobs = RawChunks.read_many(pairs) if raw else []  # type: ignore[arg-type]
        except (ChunkNotFoundError, FileNotFoundError):
            raise self._gone([s.info for s, _ in wanted]) from None
        for i, blob in zip(raw, blobs, strict=True):
            state, c = wanted[i]
            try:
                out[i] = state.raw.decode(blob, c)  # type: ignore[union-attr]
            except Exception as exc:
                if not is_damage(exc):
                    raise
                key = state.raw.key(c)  # type: ignore[union-attr]
                raise self.damaged(state.info, state.big.basename, key, exc) from None
        rest = [i for i, (s, _) in enumerate(wanted) if s.raw is None]
        if rest:

            async def fetch() -> list[Any]:
                return await asyncio.gather(*(
                    wanted[i][0].big.async_array.getitem(
                        (slice(wanted[i][1] * wanted[i][0].chunk, (wanted[i][1] + 1) * wanted[i][0].chunk),)
                    ) for i in rest
                ), return_exceptions=True)

            results = sync(fetch())
            for i, arr in zip(rest, results, strict=True):
                if isinstance(arr, (ChunkNotFoundError, FileNotFoundError)):
                    raise self._gone([s.info for s, _ in wanted]) from None
                if isinstance(arr, BaseException):
                    state, c = wanted[i]
                    if is_damage(arr):
                        raise self.damaged(state.info, state.big.basename, chunk_name(state.big, c), arr) from None
                    raise arr
                out[i] = np.asarray(arr)
        return out  # type: ignore[return-value]

    def _chunk(self, state: _Video, c: int, batch: dict[Hashable, np.ndarray] | None = None) -> np.ndarray:
        """Decoded chunk ``c`` of ``state.big`` (global chunk number): from ``batch`` (chunks
        prefetched for the current call), else the LRU cache, else the store."""
        key = (state.cache_key, c)
        if batch is not None and key in batch:
            return batch[key]
        return self.cache.get(key, lambda: self._load(state, c))

    def _prefetch(self, wanted: Sequence[tuple[_Video, int]]) -> dict[Hashable, np.ndarray]:
        """Chunks a call will need: cached ones, plus the missing ones fetched together."""
        found: dict[Hashable, np.ndarray] = {}
        missing: list[tuple[_Video, int]] = []
        for state, c in wanted:
            key = (state.cache_key, c)
            if key in found:
                continue
            hit = self.cache.peek(key)
            if hit is None:
                missing.append((state, c))
                found[key] = None  # type: ignore[assignment]  # placeholder: keeps order, no dupes
            else:
                found[key] = hit
        if missing:
            for (state, c), arr in zip(missing, self._load_many(missing), strict=True):
                found[(state.cache_key, c)] = self.cache.put((state.cache_key, c), arr)
        return found

    def _take(self, state: _Video, rows: np.ndarray) -> np.ndarray:
        """``big[rows]`` [N, ...] through the chunk cache (each chunk decoded at most once)."""
        out = np.empty((rows.shape[0], *state.big.shape[1:]), state.big.dtype)
        rows = rows + state.base
        chunk_of = rows // state.chunk
        chunks = np.unique(chunk_of)
        batch = self._prefetch([(state, int(c)) for c in chunks]) if len(chunks) > 1 else None
        for c in chunks:
            sel = chunk_of == c
            out[sel] = self._chunk(state, int(c), batch)[rows[sel] - c * state.chunk]
        return out

    def _small(self, state: _Video) -> dict[str, np.ndarray]:
        if state.small is None:
            state.small = self._load_small(state)
        return state.small

    def _rows(self, state: _Video, index: np.ndarray) -> ActorRows:
        small = self._small(state)
        return ActorRows(
            self._take(state, index), small["boxes"][index], small["scores"][index],
            state.timestamps[index], small["person_ids"][index], state.info.source,
        )

    def read_video(self, video_id: str) -> ActorRows:
        """All rows of a video, time-sorted (features [R, D] in the bank dtype)."""
        state = self._video(video_id)
        small = self._small(state)
        features = self._read(state.info, state.big, slice(state.base, state.base + state.info.rows))
        return ActorRows(
            features, small["boxes"], small["scores"], state.timestamps, small["person_ids"], state.info.source
        )

    def rows_at(self, video_id: str, t: float) -> ActorRows:
        """Rows of keyframe ``t`` (|timestamp - t| <= 1 ms): the keyframe's own actors."""
        state = self._video(video_id)
        second = int(np.floor(t))
        a, b = state.index.row_range(second - 1, second + 2)  # t may sit just below a second
        hit = a + np.flatnonzero(np.abs(state.timestamps[a:b] - t) <= TIME_TOLERANCE)
        return self._rows(state, hit.astype(np.int64))

    def window(
        self, video_id: str, t: float, *, width: int = 60, per_second: int = 5, training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> BankWindow:
        """Long-term window of keyframe ``t`` (semantics: ``stad_core.banks``)."""
        state = self._video(video_id)
        return assemble_window(
            lambda rows: self._take(state, rows), video_id, state.index, state.timestamps, t,
            width=width, per_second=per_second, training=training, rng=rng,
            feature_dim=self.spec.feature_dim, dtype=self.spec.numpy_dtype,
        )

    def gather_windows(
        self, keys: Sequence[tuple[str, float]], *, width: int = 60, per_second: int = 5,
        training: bool = False, rng: np.random.Generator | None = None,
    ) -> WindowBatch:
        """Windows of B keyframes at once: features [B, W*K, D], mask [B, W*K].

        Plans every window first (in key order, so results equal B calls of :meth:`window` with
        the same ``rng``), then fetches per video: each needed chunk is decoded once per batch
        (and kept in the chunk cache for the next batch).
        """
        slots = width * per_second
        b = len(keys)
        rows = np.full((b, slots), -1, np.int64)
        mask = np.zeros((b, slots), bool)
        by_video: dict[str, list[int]] = {}
        for i, (vid, t) in enumerate(keys):
            state = self._video(vid)
            gen = window_rng(vid, t, training=training, rng=rng)
            rows[i], mask[i] = plan_window(state.index, t, width=width, per_second=per_second, rng=gen)
            by_video.setdefault(vid, []).append(i)
        d = self.spec.feature_dim
        feats = np.empty((b * slots, d), self.spec.numpy_dtype)
        flat_mask = mask.reshape(-1)
        feats[~flat_mask] = 0  # masked slots are zero (and say so in the mask)
        flat_rows = rows.reshape(-1)
        stamps = np.full(b * slots, np.nan)
        plans = []
        for vid, members in by_video.items():
            state = self._video(vid)
            dest = (np.asarray(members)[:, None] * slots + np.arange(slots)).reshape(-1)
            dest = dest[flat_mask[dest]]
            wanted = flat_rows[dest]
            stamps[dest] = state.timestamps[wanted]
            chunk_of = (wanted + state.base) // state.chunk
            plans.append((state, dest, wanted + state.base, chunk_of, np.unique(chunk_of)))
        # Videos in groups of ~_FETCH_CHUNKS chunks: each group's missing chunks are fetched in one
        # concurrent read (object stores), and at most one group of decoded chunks is held
        # beyond the LRU cache (bounded memory).
        start = 0
        while start < len(plans):
            stop, need = start, 0
            while stop < len(plans) and (need == 0 or need + len(plans[stop][4]) <= _FETCH_CHUNKS):
                need += len(plans[stop][4])
                stop += 1
            group = plans[start:stop]
            batch = self._prefetch([(state, int(c)) for state, _, _, _, chunks in group for c in chunks])
            for state, dest, wanted, chunk_of, chunks in group:
                for c in chunks:  # straight into place, one chunk at a time
                    sel = np.flatnonzero(chunk_of == c)
                    chunk = batch[(state.cache_key, int(c))]
                    for j in range(0, len(sel), _SCATTER_ROWS):  # bounded temporaries
                        part = sel[j : j + _SCATTER_ROWS]
                        feats[dest[part]] = chunk[wanted[part] - c * state.chunk]
            del batch
            start = stop
        feats = feats.reshape(b, slots, d)
        stamps = stamps.reshape(b, slots)
        return WindowBatch(feats, mask, stamps)

    def read_context(self, video_id: str) -> ContextMaps:
        """All context maps of a video: maps [K, C, h, w], timestamps [K]."""
        state = self._video(video_id, "context")
        return ContextMaps(self._read(state.info, state.big, slice(state.base, state.base + state.info.rows)),
                           state.timestamps)

    def context(self, video_id: str, t: float) -> np.ndarray:
        """Context map [C, h, w] of keyframe ``t``."""
        state = self._video(video_id, "context")
        i = find_keyframe(state.timestamps, t)
        if i is None:
            raise BankError(f"video {video_id!r} has no context map at t={t} (keyframes are at their timestamps)")
        return self._take(state, np.array([i]))[0]

