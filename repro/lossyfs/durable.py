"""Where an inode's durable bytes live: its backing file, or memory while it has no durable name."""

from __future__ import annotations

import os
from typing import Protocol


class Durable(Protocol):
    """The persisted content of one inode: what would survive a power cut if the inode is reachable."""

    def pread(self, offset: int, size: int) -> bytes: ...

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...

    def pwritev(self, offset: int, buffers: list[bytearray | memoryview]) -> None:
        """Write the buffers back to back from `offset` (one contiguous run of pages)."""
        ...

    def truncate(self, size: int) -> None: ...

    def size(self) -> int: ...

    def close(self) -> None: ...


class BackingFile:
    """An open backing file; it stays valid across renames and unlinks in the backing directory."""

    __slots__ = ("fd", "_size")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._size = os.fstat(fd).st_size

    def pread(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], offset + done)
        self._size = max(self._size, offset + len(view))

    def pwritev(self, offset: int, buffers: list[bytearray | memoryview]) -> None:
        total = sum(len(b) for b in buffers)
        done = os.pwritev(self.fd, buffers, offset)
        if done < total:  # a short write: finish the rest one buffer at a time
            pos = 0
            for buf in buffers:
                if pos + len(buf) > done:
                    skip = max(0, done - pos)
                    self.pwrite(offset + pos + skip, memoryview(buf)[skip:])
                pos += len(buf)
        self._size = max(self._size, offset + total)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self._size = size

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        os.close(self.fd)


class InMemory:
    """The persisted content of an inode whose name is not durable yet (an orphan if the power goes)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def pread(self, offset: int, size: int) -> bytes:
        return bytes(self.buf[offset : offset + size])

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        end = offset + len(data)
        if end > len(self.buf):
            self.buf.extend(bytes(end - len(self.buf)))
        self.buf[offset:end] = data

    def pwritev(self, offset: int, buffers: list[bytearray | memoryview]) -> None:
        self.pwrite(offset, b"".join(buffers))

    def truncate(self, size: int) -> None:
        if size < len(self.buf):
            del self.buf[size:]
        else:
            self.buf.extend(bytes(size - len(self.buf)))

    def size(self) -> int:
        return len(self.buf)

    def close(self) -> None:
        self.buf = bytearray()
