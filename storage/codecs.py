"""Compressor choice for bank arrays, named by a short string (``"blosc-zstd:1"``, ``"zstd:1"``, ...).

The bank records the name in its root attributes; every array's own metadata records the full
codec configuration, so readers never need the name.
"""

from __future__ import annotations

from typing import Any

from stad_core.banks import BankError

DEFAULT_CODEC = "blosc-zstd:1"
CODECS = ("blosc-zstd", "blosc-lz4", "zstd", "lz4", "gzip", "none")


def compressors(name: str) -> list[Any]:
    """zarr v3 compressor list for ``name[:level]`` (numcodecs does the work underneath).

    ``blosc-*`` use byte-shuffle. On ReLU-like fp16 rows (256 x 2304): blosc-zstd:1 1.69x, 3.2 ms
    CPU to decode; zstd:3 same ratio, 2x slower to encode; blosc-lz4 1.15x but 0.6 ms (docs/bank-format.md).
    """
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
