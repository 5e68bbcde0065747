"""Codec chains of bank arrays: a compressor named by a short string (``"blosc-zstd:1"``,
``"zstd:1"``, ...), then a CRC32C checksum of the stored bytes.

The bank records the name (and ``checksum``) in its root attributes; every array's own metadata
records the full codec chain, so readers never need the name. The checksum (zarr's
``Crc32cCodec``: 4 bytes appended to each stored chunk, checked on every read) is what turns
flipped bytes inside a chunk into an error instead of silently different features: a compressor
alone decodes many such chunks without complaint.
"""

from __future__ import annotations

from typing import Any

from stad_core.banks import BankError

DEFAULT_CODEC = "blosc-zstd:1"
CODECS = ("blosc-zstd", "blosc-lz4", "zstd", "lz4", "gzip", "none")
CHECKSUM = "crc32c"  # the root attribute ``checksum`` of banks that write it ("none" otherwise)


def compressors(name: str, *, checksum: bool = True) -> list[Any]:
    """zarr v3 bytes-to-bytes chain for ``name[:level]``: the compressor (numcodecs does the work
    underneath), then ``Crc32cCodec`` over the compressed bytes unless ``checksum=False``.

    The checksum costs ~0.02 ms per 400 KiB chunk (hardware CRC32C) against ~3 ms to decompress it.
    ``blosc-*`` use byte-shuffle. On ReLU-like fp16 rows (256 x 2304): blosc-zstd:1 1.69x, 3.2 ms
    CPU to decode; zstd:3 same ratio, 2x slower to encode; blosc-lz4 1.15x but 0.6 ms (docs/bank-format.md).
    """
    from zarr.codecs import Crc32cCodec

    crc = [Crc32cCodec()] if checksum else []
    return _compressor(name) + crc


def _compressor(name: str) -> list[Any]:
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    base, _, level_text = name.partition(":")
    try:
        level = int(level_text) if level_text else None
    except ValueError:
        raise BankError(f"codec {name!r}: level must be an integer, e.g. 'zstd:1'") from None
    if base == "blosc-zstd":
        return [BloscCodec(cname="zstd", clevel=1 if level is None else level, shuffle="shuffle")]
    if base == "blosc-lz4":
        return [BloscCodec(cname="lz4", clevel=5 if level is None else level, shuffle="shuffle")]
    if base == "zstd":
        return [ZstdCodec(level=1 if level is None else level)]
    if base == "gzip":
        return [GzipCodec(level=5 if level is None else level)]
    if base == "lz4":
        from numcodecs.zarr3 import LZ4

        return [LZ4(acceleration=1 if level is None else level)]
    if base == "none":
        return []
    raise BankError(f"unknown codec {name!r} (choose one of {', '.join(CODECS)}, optionally ':level')")


def has_checksum(array: Any) -> bool:
    """Whether the chunks of zarr ``array`` end with a CRC32C (inner chunks of a sharded array too)."""
    from zarr.codecs import Crc32cCodec, ShardingCodec

    for codec in getattr(array.metadata, "codecs", ()):
        if isinstance(codec, Crc32cCodec):
            return True
        if isinstance(codec, ShardingCodec) and any(isinstance(c, Crc32cCodec) for c in codec.codecs):
            return True
    return False
