"""The content-addressed blob file of a trace: each distinct data stored once, zlib-compressed.

Layout: ``LFSBLOB1``, then one record per distinct content: ``<32-byte sha256 of the data>
<u8 method: 0 raw, 1 zlib> <u32 BE stored length> <stored bytes>``. Raw is used where
compression would not shrink the data.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from typing import IO

from repro.lossyfs.errors import LossyFsError

MAGIC = b"LFSBLOB1"
_HEAD = struct.Struct(">32sBI")
_RAW, _ZLIB = 0, 1
_ZLIB_LEVEL = 1  # a few times faster than the default for a little less compression


class TraceError(LossyFsError):
    """A trace file that is not a lossyfs trace of this version, or whose blobs are missing or damaged."""


class BlobWriter:
    """Appends blobs; `put` returns the hex digest a trace record refers to."""

    def __init__(self, path: str) -> None:
        self._file: IO[bytes] = open(path, "wb", buffering=1 << 20)
        self._file.write(MAGIC)
        self._stored: set[bytes] = set()

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).digest()
        if digest not in self._stored:
            packed = zlib.compress(data, _ZLIB_LEVEL)
            method, stored = (_ZLIB, packed) if len(packed) < len(data) else (_RAW, data)
            self._file.write(_HEAD.pack(digest, method, len(stored)))
            self._file.write(stored)
            self._stored.add(digest)
        return digest.hex()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_blobs(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every blob of the file by hex digest, each checked against its digest."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise TraceError(f"blob file {os.fspath(path)} is missing") from None
    if not raw.startswith(MAGIC):
        raise TraceError(f"{os.fspath(path)}: not a lossyfs blob file")
    blobs: dict[str, bytes] = {}
    pos = len(MAGIC)
    while pos < len(raw):
        if pos + _HEAD.size > len(raw):
            raise TraceError(f"{os.fspath(path)}: truncated at byte {pos}")
        digest, method, size = _HEAD.unpack_from(raw, pos)
        pos += _HEAD.size
        stored = raw[pos : pos + size]
        pos += size
        if len(stored) != size:
            raise TraceError(f"{os.fspath(path)}: truncated at byte {pos}")
        try:
            data = {_RAW: lambda b: b, _ZLIB: zlib.decompress}[method](stored)
        except (KeyError, zlib.error):
            raise TraceError(f"{os.fspath(path)}: blob {digest.hex()} cannot be decoded (method {method})") from None
        if hashlib.sha256(data).digest() != digest:
            raise TraceError(f"{os.fspath(path)}: blob {digest.hex()} does not match its content")
        blobs[digest.hex()] = data
    return blobs
