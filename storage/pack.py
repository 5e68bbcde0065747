"""Packed banks: many small videos in a few large row-major, sharded arrays plus a parquet index.

Per-video groups cost ~14 small objects per video: fine for AVA (~300 long videos), heavy for
AVA-Kinetics (~240k clips -> millions of objects). ``pack_bank`` copies the complete videos of a
row bank into::

    <packed>/zarr.json            attrs.stad_bank = {format, layout: "packed", spec, rows, videos, ...}
    <packed>/features [row, channel]   chunks (chunk_rows, D) inside shards (shard_rows, D)
    <packed>/boxes, scores, timestamps, person_ids        chunks (shard_rows, ...)
    <packed>/second_offsets [edge]     every video's offsets, relative to its row_start, end to end
    <packed>/index.parquet        video_id, row_start, rows, first_second, num_seconds,
                                  offsets_start, source, meta (JSON)

Rows of one video stay contiguous, so a window is still one or two chunk reads. The pack is written
once by one process, shard by shard, and marked complete (root attributes) last; it is read-only.
Inner chunks carry a CRC32C like per-video chunks (shard indexes always do, zarr's default); a
damaged one is a BankError naming the video read, the array and the shard/inner chunk.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import zarr

from stad_core.banks import COLUMN_DTYPES, ROW_KINDS, BankError, BankSpec, SecondIndex
from stad_core.progress import ProgressFn, report
from storage.banks import FORMAT, FORMAT_VERSION, ROOT_KEY, VideoInfo, ZarrBank, chunk_rows_for
from storage.cache import ChunkCache
from storage.codecs import CHECKSUM, compressors
from storage.reading import RowReader, _Video
from storage.uri import open_store

INDEX_FILE = "index.parquet"
_SMALL = ("boxes", "scores", "timestamps", "person_ids")


def _index_url(uri: str) -> str:
    return uri.rstrip("/") + "/" + INDEX_FILE


def pack_bank(
    src: ZarrBank,
    dst_uri: str,
    *,
    shard_rows: int = 1 << 16,
    codec: str | None = None,
    on_progress: ProgressFn | None = None,
) -> PackedBank:
    """Copy every complete video of ``src`` (a long_term/actor_context bank) into a packed bank.

    ``shard_rows`` rows make one stored object per array (features: 64k x 2304 fp16 ~ 300 MB
    uncompressed); chunks inside a shard follow the bank's chunk target, so reads stay small.
    """
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = src.spec
    if spec.kind not in ROW_KINDS:
        raise BankError(f"only row banks (long_term, actor_context) can be packed, not {spec.kind}")
    codec = codec or src.codec
    videos = src.videos()
    infos = [src.video_info(v) for v in videos]
    total = sum(i.rows for i in infos)
    d = spec.feature_dim
    chunk_rows = chunk_rows_for(d * spec.numpy_dtype.itemsize, src.chunk_bytes, 1 << 30)
    shard_rows = max(chunk_rows, shard_rows // chunk_rows * chunk_rows)  # shards hold whole chunks

    store = open_store(dst_uri, read_only=False)
    try:
        root = zarr.open_group(store, mode="w-", zarr_format=3)
    except (FileExistsError, zarr.errors.ContainsGroupError, zarr.errors.ContainsArrayError):
        raise BankError(f"{dst_uri} already exists; pack into a new location") from None
    comp = compressors(codec)
    features = root.create_array(
        "features", shape=(total, d), dtype=spec.numpy_dtype, chunks=(chunk_rows, d),
        shards=(shard_rows, d) if total else None, compressors=comp, fill_value=0,
        dimension_names=("row", "channel"),
    )
    small_shapes = {"boxes": ((total, 4), ("row", "coord")), "scores": ((total,), ("row",)),
                    "timestamps": ((total,), ("row",)), "person_ids": ((total,), ("row",))}
    small = {
        name: root.create_array(name, shape=shape, dtype=COLUMN_DTYPES[name], chunks=(shard_rows, *shape[1:]),
                                compressors=comp, fill_value=0, dimension_names=dims)
        for name, (shape, dims) in small_shapes.items()
    }

    table: dict[str, list[Any]] = {k: [] for k in (
        "video_id", "row_start", "rows", "first_second", "num_seconds", "offsets_start", "source", "meta")}
    offsets_parts: list[np.ndarray] = []
    pending: dict[str, list[np.ndarray]] = {k: [] for k in ("features", *_SMALL)}
    pending_rows = written = offsets_len = 0

    def flush(final: bool) -> None:
        nonlocal pending_rows, written
        while pending_rows >= shard_rows or (final and pending_rows):
            block = {k: np.concatenate(v) for k, v in pending.items()}
            n = min(shard_rows, pending_rows)
            features[written : written + n] = block["features"][:n]  # one whole shard per write
            for name in _SMALL:
                small[name][written : written + n] = block[name][:n]
            for k in pending:
                pending[k] = [block[k][n:]]
            written += n
            pending_rows -= n

    row_start = 0
    for i, (vid, info) in enumerate(zip(videos, infos, strict=True)):
        rows = src.read_video(vid)
        state = src._video(vid)
        for k in ("features", *_SMALL):
            pending[k].append(getattr(rows, k))
        pending_rows += len(rows)
        table["video_id"].append(vid)
        table["row_start"].append(row_start)
        table["rows"].append(len(rows))
        table["first_second"].append(state.index.first_second)
        table["num_seconds"].append(state.index.num_seconds)
        table["offsets_start"].append(offsets_len)
        table["source"].append(rows.source)
        table["meta"].append(json.dumps(info.meta))
        offsets_parts.append(state.index.offsets)
        offsets_len += len(state.index.offsets)
        row_start += len(rows)
        flush(final=False)
        src.refresh()  # keep memory flat: the source's decoded chunks are not needed again
        report(on_progress, i + 1, len(videos))
    flush(final=True)
    offsets = np.concatenate(offsets_parts) if offsets_parts else np.zeros(0, np.int64)
    root.create_array("second_offsets", data=offsets.astype(np.int64), chunks=(max(1, len(offsets)),),
                      compressors=comp, dimension_names=("edge",))
    with fsspec.open(_index_url(dst_uri), "wb") as f:
        pq.write_table(pa.table(table), f)
    attrs = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "layout": "packed", "spec": spec.to_attrs(),
        "codec": codec, "checksum": CHECKSUM, "rows": total, "videos": len(videos), "shard_rows": shard_rows,
        "chunk_rows": chunk_rows, "packed_from": src.uri, "created_at": time.time(),
    }
    root.attrs.update({ROOT_KEY: attrs})  # last: a pack without these attributes is not a bank
    return open_packed(dst_uri)


class PackedBank(RowReader):
    """Read-only :class:`~stad_core.banks.FeatureBankReader` over a packed bank.

    Opening reads the root metadata only; the parquet index (one object) is read on first use.
    Chunks are cached across videos, since neighbouring videos share them.
    """

    def __init__(self, uri: str, store: Any, root: Any, spec: BankSpec, attrs: dict[str, Any],
                 cache_bytes: int) -> None:
        self.uri = uri
        self._store = store
        self._root = root
        self._spec = spec
        self.attrs = attrs
        self.cache = ChunkCache(cache_bytes)
        self._index: dict[str, tuple[int, ...]] | None = None
        self._sources: dict[str, tuple[str, str]] = {}
        self._states: dict[str, _Video] = {}
        self._offsets: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"PackedBank({self.uri!r}, {self.attrs['videos']} videos, {self.attrs['rows']} rows)"

    @property
    def spec(self) -> BankSpec:
        return self._spec

    def _load_index(self) -> dict[str, tuple[int, ...]]:
        if self._index is None:
            import fsspec
            import pyarrow.parquet as pq

            with fsspec.open(_index_url(self.uri), "rb") as f:
                t = pq.read_table(f).to_pydict()
            cols = ("row_start", "rows", "first_second", "num_seconds", "offsets_start")
            self._index = {v: tuple(int(t[c][i]) for c in cols) for i, v in enumerate(t["video_id"])}
            self._sources = {v: (t["source"][i], t["meta"][i]) for i, v in enumerate(t["video_id"])}
        return self._index

    def videos(self) -> list[str]:
        return sorted(self._load_index())

    def is_complete(self, video_id: str) -> bool:
        return video_id in self._load_index()

    def video_info(self, video_id: str) -> VideoInfo:
        entry = self._load_index().get(video_id)
        if entry is None:
            raise BankError(f"video {video_id!r} is not in packed bank {self.uri}")
        row_start, rows, first, seconds, _ = entry
        source, meta = self._sources[video_id]
        return VideoInfo(video_id, "packed", rows, first, seconds, source, json.loads(meta), 0.0)

    def video_meta(self, video_id: str) -> dict[str, Any]:
        return self.video_info(video_id).meta

    def recovery(self, video_id: str) -> str:
        return (f"pack again from the per-video bank it was packed from ({self.attrs.get('packed_from', '?')}) "
                "into a new location, after `stad bank verify` of that bank")

    def _video(self, video_id: str, want: str = "rows") -> _Video:
        state = self._states.get(video_id)
        if state is not None:
            return state
        info = self.video_info(video_id)
        row_start, rows, first, seconds, off_start = self._load_index()[video_id]
        if self._offsets is None:
            self._offsets = np.asarray(self._read(info, self._root["second_offsets"]), np.int64)
        index = SecondIndex(first, self._offsets[off_start : off_start + seconds + 1])
        big = self._root["features"]
        timestamps = np.asarray(self._read(info, self._root["timestamps"], slice(row_start, row_start + rows)),
                                np.float64)
        state = _Video(info, index, timestamps, big, int(big.chunks[0]), "packed", row_start)
        self._states[video_id] = state
        return state

    def _load_small(self, state: _Video) -> dict[str, np.ndarray]:
        a, b = state.base, state.base + state.info.rows
        return {k: self._read(state.info, self._root[k], slice(a, b)) for k in ("boxes", "scores", "person_ids")}

    def refresh(self) -> None:
        self._states.clear()
        self.cache.clear()


def open_packed(uri: str, *, cache_bytes: int = 16 << 20) -> PackedBank:
    """Open a packed bank read-only (one small metadata read)."""
    store = open_store(uri, read_only=True)
    try:
        root = zarr.open_group(store, mode="r", zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise BankError(f"no packed bank at {uri}") from None
    attrs = root.attrs.get(ROOT_KEY)
    if not attrs or attrs.get("layout") != "packed":
        raise BankError(f"{uri} is not a complete packed bank (was the pack interrupted? pack again)")
    return PackedBank(uri, store, root, BankSpec.from_attrs(attrs["spec"]), dict(attrs), cache_bytes)
