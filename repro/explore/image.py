"""What SQLite will see of a WAL database after a crash: the digest of its logical image.

SQLite's WAL recovery (sqlite.org/fileformat.html, "The WAL file"; wal.c, walIndexRecover)
reads the header -- magic 0x377f0682/3 (checksums little/big endian), version 3007000, page
size, salts, a checksum of its first 24 bytes -- then frames while each has the header's salts,
a page number, and a cumulative checksum that matches (over the frame header's first 8 bytes
and the page, continuing from the previous frame). Frames up to the last valid *commit* frame
(one whose "database size after commit" is not zero) are the WAL's content; the rest is ignored.
Readers see the database file with those frames' pages on top, cut to the last commit's size.

Two crash states with the same image look the same to every check the probe makes (it opens
the files with SQLite), so they can share one probe: a torn or missing frame after the last
commit, or a checkpoint's un-synced page writes under frames that still hold the same pages,
change the files but not the image. ``image_key`` returns None wherever this reasoning does not
apply -- a database whose header is not in WAL mode (a -wal beside it is not read), an empty
database file, page sizes that disagree -- and the caller then keys the state by its bytes alone.
Parsing can start at any frame from a known chain state, so a state that differs from the
durable WAL only in its last frames parses only those.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Callable, Sequence

WAL_MAGIC = 0x377F0682
WAL_VERSION = 3007000
WAL_HEADER = 32
FRAME_HEADER = 24
_MASK = 0xFFFFFFFF
Reader = Callable[[int, int], bytes]  # (offset, size) -> the bytes there (short at the end of the file)


def page_size_of(raw: int) -> int | None:
    size = 65536 if raw == 1 else raw
    return size if 512 <= size <= 65536 and size & (size - 1) == 0 else None


def wal_checksum(data: bytes | memoryview, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum over ``data`` (a multiple of 8 bytes), continuing from (s0, s1)."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    it = iter(words)
    for x0 in it:
        s0 = (s0 + x0 + s1) & _MASK
        s1 = (s1 + next(it) + s0) & _MASK
    return s0, s1


@dataclass(frozen=True)
class WalHeader:
    page_size: int
    big_endian: bool
    salts: tuple[int, int]
    chain: tuple[int, int]  # the checksum the first frame continues from

    @property
    def frame_size(self) -> int:
        return FRAME_HEADER + self.page_size


@dataclass(frozen=True)
class Frame:
    """A valid frame: its page, the database size if it commits (else 0), the page's sha1, the chain after it."""

    pgno: int
    commit: int
    digest: bytes
    chain: tuple[int, int]


def read_header(head: bytes) -> WalHeader | None:
    """The WAL header if it is valid (else recovery treats the WAL as empty)."""
    if len(head) < WAL_HEADER:
        return None
    magic, version, raw_size, _, salt1, salt2, c0, c1 = struct.unpack(">8I", head[:WAL_HEADER])
    size = page_size_of(raw_size)
    if magic & ~1 & _MASK != WAL_MAGIC or version != WAL_VERSION or size is None:
        return None
    big = bool(magic & 1)
    chain = wal_checksum(head[:24], 0, 0, big)
    return WalHeader(size, big, (salt1, salt2), chain) if chain == (c0, c1) else None


class FrameChecker:
    """Checksums frames, remembering each (chain, frame) seen: crash states share most frames."""

    def __init__(self, limit: int = 200_000) -> None:
        self._seen: dict[tuple[int, int, bool, bytes], tuple[int, int]] = {}
        self._limit = limit

    def chain(self, start: tuple[int, int], big: bool, frame: bytes, digest: bytes) -> tuple[int, int]:
        key = (*start, big, digest)
        found = self._seen.get(key)
        if found is None:
            found = wal_checksum(frame[FRAME_HEADER:], *wal_checksum(frame[:8], *start, big), big)
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen[key] = found
        return found


def read_frames(header: WalHeader, read: Reader, size: int, first: int = 0, chain: tuple[int, int] | None = None,
                checker: FrameChecker | None = None) -> list[Frame]:
    """The valid frames from frame ``first`` (whose predecessor left ``chain``) until the first invalid one."""
    checker = checker or FrameChecker()
    frames: list[Frame] = []
    s = chain if chain is not None else header.chain
    pos = WAL_HEADER + first * header.frame_size
    while pos + header.frame_size <= size:
        frame = read(pos, header.frame_size)
        if len(frame) < header.frame_size:
            break
        pgno, commit, salt1, salt2, f0, f1 = struct.unpack(">6I", frame[:FRAME_HEADER])
        if pgno == 0 or (salt1, salt2) != header.salts:
            break
        digest = hashlib.sha1(frame).digest()
        s = checker.chain(s, header.big_endian, frame, digest)
        if s != (f0, f1):
            break
        frames.append(Frame(pgno, commit, hashlib.sha1(frame[FRAME_HEADER:]).digest(), s))
        pos += header.frame_size
    return frames


def image_key(db_size: int, read_db: Reader, page_digests: Callable[[int], Sequence[bytes]],
              wal: tuple[WalHeader, Sequence[Frame]] | None) -> bytes | None:
    """The digest of the image SQLite recovers from a WAL-mode database and its parsed -wal file.

    ``read_db(offset, size)`` reads the database as the state has it; ``page_digests(page_size)``
    gives a sha1 per page of it; ``wal`` is the WAL's valid header and frames (None: no WAL, an
    empty one or one with an invalid header). None where the image reasoning does not apply.
    """
    if db_size < 100:
        return None  # an empty database with a WAL: SQLite deletes the WAL rather than read it
    header = read_db(0, 100)
    if header[18:20] != b"\x02\x02":
        return None  # not a WAL database: a -wal file beside it is not read
    page_size = page_size_of(struct.unpack(">H", header[16:18])[0])
    if page_size is None or (wal is not None and wal[0].page_size != page_size):
        return None
    digests = list(page_digests(page_size))
    pages = len(digests)
    frames = list(wal[1]) if wal is not None else []
    last_commit = max((n for n, f in enumerate(frames) if f.commit), default=-1)
    if last_commit >= 0:
        for f in frames[: last_commit + 1]:
            if f.pgno > len(digests):
                digests.extend([b""] * (f.pgno - len(digests)))
            digests[f.pgno - 1] = f.digest
        pages = frames[last_commit].commit
    if pages > len(digests):
        digests.extend([b""] * (pages - len(digests)))
    h = hashlib.sha1(struct.pack(">II", page_size, pages))
    for d in digests[:pages]:
        h.update(d or b"\0" * 20)
    return h.digest()
