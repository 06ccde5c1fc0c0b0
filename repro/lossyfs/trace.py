"""The recorded trace of a lossyfs mount: what reached the filesystem, in order, to rebuild any state.

A trace is two files written outside the mount (stdlib only, like the daemon):

``PATH`` -- UTF-8 JSON lines. The first line is the header::

    {"format": "lossyfs-trace", "version": 1, "blobs": "<name of the blob file>",
     "page_size": 4096, "wall_ns": <time.time_ns() at start>, "mono_ns": <time.monotonic_ns() at start>}

then the initial state (the backing directory when recording started, before the mount)::

    {"op": "init-dir", "path": "sub"}
    {"op": "init-file", "path": "state.db", "ino": 2, "size": 8192, "blob": "<sha256 hex>"}

then one line per operation, each with ``seq`` (1, 2, 3, ... in the order the daemon handled
them) and ``t`` (time.monotonic_ns() when handled -- CLOCK_MONOTONIC is shared by every
process of the machine, so other logs can be placed against it)::

    {"op": "write", "seq": 1, "t": ..., "ino": 2, "path": "state.db-wal", "offset": 0, "length": 4096,
     "blob": "<sha256 hex>"}
    truncate (ino, path, size) | create (ino, path) | mkdir (path) | rmdir (path)
    rename (ino, src, dst) | unlink (ino, path) | fsync (ino, path, datasync)
    fsyncdir (path) | mark (label) | cut () | stop (synced)

Paths are relative to the mount; ``ino`` identifies a file across renames and unlinks (a
write's ``path`` is informational: "<name> (unlinked)" for a file with no name left). A
``mark`` is a label a process sent on the daemon's mark socket (see `MarkClient`): the daemon
records it between two requests and only then answers, so every operation the process had
completed before sending it precedes it in the trace (e.g. "ack 17" after a commit returned).

With the kernel's writeback cache (fuse_ops.py) a ``write`` is what the kernel sent: whole
pages, at fsync, close, the daemon's drain or the kernel's own writeback -- the block-level
view a disk gets, not each write() call of the process.

``PATH.blobs`` -- the data of writes and initial files, content-addressed by sha256 and
zlib-compressed, each distinct content stored once (layout in blobs.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, ClassVar, TypeVar, Union

from repro.lossyfs.blobs import BlobWriter, TraceError, read_blobs
from repro.lossyfs.inodes import UNLINKED

__all__ = ["TraceError", "TraceReader", "TraceWriter", "MarkClient", "rebuild"]

FORMAT = "lossyfs-trace"
VERSION = 1
_T = TypeVar("_T")
_TYPES: dict[str, type] = {"int": int, "str": str, "bool": bool}


@dataclass(frozen=True)
class Header:
    """When and how the trace was recorded."""

    version: int
    page_size: int
    wall_ns: int
    mono_ns: int


@dataclass(frozen=True)
class InitialFile:
    path: str
    ino: int
    data: bytes


@dataclass(frozen=True)
class Initial:
    """The backing directory when recording started: directories (parents first) and files."""

    dirs: tuple[str, ...]
    files: tuple[InitialFile, ...]


@dataclass(frozen=True)
class Write:
    OP: ClassVar[str] = "write"
    seq: int
    t: int
    ino: int
    path: str
    offset: int
    data: bytes

    @property
    def length(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Truncate:
    OP: ClassVar[str] = "truncate"
    seq: int
    t: int
    ino: int
    path: str
    size: int


@dataclass(frozen=True)
class Create:
    OP: ClassVar[str] = "create"
    seq: int
    t: int
    ino: int
    path: str


@dataclass(frozen=True)
class Mkdir:
    OP: ClassVar[str] = "mkdir"
    seq: int
    t: int
    path: str


@dataclass(frozen=True)
class Rmdir:
    OP: ClassVar[str] = "rmdir"
    seq: int
    t: int
    path: str


@dataclass(frozen=True)
class Rename:
    OP: ClassVar[str] = "rename"
    seq: int
    t: int
    ino: int
    src: str
    dst: str


@dataclass(frozen=True)
class Unlink:
    OP: ClassVar[str] = "unlink"
    seq: int
    t: int
    ino: int
    path: str


@dataclass(frozen=True)
class Fsync:
    """fsync or fdatasync (``datasync``) of a regular file."""

    OP: ClassVar[str] = "fsync"
    seq: int
    t: int
    ino: int
    path: str
    datasync: bool


@dataclass(frozen=True)
class FsyncDir:
    """fsync of a directory: makes its entry changes durable."""

    OP: ClassVar[str] = "fsyncdir"
    seq: int
    t: int
    path: str


@dataclass(frozen=True)
class Mark:
    OP: ClassVar[str] = "mark"
    seq: int
    t: int
    label: str


@dataclass(frozen=True)
class Cut:
    """The power was cut: nothing after this reached the disk."""

    OP: ClassVar[str] = "cut"
    seq: int
    t: int


@dataclass(frozen=True)
class Stop:
    """A clean unmount (``synced``: everything was persisted first) or one after the cut."""

    OP: ClassVar[str] = "stop"
    seq: int
    t: int
    synced: bool


Op = Union[Write, Truncate, Create, Mkdir, Rmdir, Rename, Unlink, Fsync, FsyncDir, Mark, Cut, Stop]
_OPS: dict[str, type[Op]] = {cls.OP: cls for cls in (Write, Truncate, Create, Mkdir, Rmdir, Rename, Unlink,
                                                       Fsync, FsyncDir, Mark, Cut, Stop)}


def blob_path(path: str | os.PathLike[str]) -> str:
    return os.fspath(path) + ".blobs"


class TraceWriter:
    """Appends a trace (ops to PATH, data to PATH.blobs); buffered: `flush()` at the points that matter."""

    def __init__(self, path: str | os.PathLike[str], page_size: int, *, skip_data_of: tuple[str, ...] = ()) -> None:
        """``skip_data_of``: name suffixes whose writes, truncates, fsyncs go unrecorded (``-shm``: no crash state holds it)."""
        self.path = os.fspath(path)
        self._skip = skip_data_of
        self._ops: IO[str] = open(self.path, "w", encoding="utf-8", buffering=1 << 16)
        self._blobs = BlobWriter(blob_path(self.path))
        self._seq = 0
        self._line({"format": FORMAT, "version": VERSION, "blobs": os.path.basename(blob_path(self.path)),
                    "page_size": page_size, "wall_ns": time.time_ns(), "mono_ns": time.monotonic_ns()})

    def initial_dir(self, path: str) -> None:
        self._line({"op": "init-dir", "path": path})

    def initial_file(self, path: str, ino: int, data: bytes) -> None:
        self._line({"op": "init-file", "path": path, "ino": ino, "size": len(data), "blob": self._blobs.put(data)})

    def write(self, ino: int, path: str, offset: int, data: bytes) -> None:
        self._op("write", ino=ino, path=path, offset=offset, length=len(data), blob=self._blobs.put(data))

    def truncate(self, ino: int, path: str, size: int) -> None:
        self._op("truncate", ino=ino, path=path, size=size)

    def create(self, ino: int, path: str) -> None:
        self._op("create", ino=ino, path=path)

    def mkdir(self, path: str) -> None:
        self._op("mkdir", path=path)

    def rmdir(self, path: str) -> None:
        self._op("rmdir", path=path)

    def rename(self, ino: int, src: str, dst: str) -> None:
        self._op("rename", ino=ino, src=src, dst=dst)

    def unlink(self, ino: int, path: str) -> None:
        self._op("unlink", ino=ino, path=path)

    def fsync(self, ino: int, path: str, datasync: bool) -> None:
        self._op("fsync", ino=ino, path=path, datasync=datasync)

    def fsyncdir(self, path: str) -> None:
        self._op("fsyncdir", path=path)

    def mark(self, label: str) -> None:
        self._op("mark", label=label)
        self.flush()

    def cut(self) -> None:
        self._op("cut")
        self.flush()

    def stop(self, synced: bool) -> None:
        self._op("stop", synced=synced)
        self.flush()

    def flush(self) -> None:
        """Hand everything so far to the kernel (blobs first): it then outlives the daemon."""
        self._blobs.flush()
        self._ops.flush()

    def close(self) -> None:
        self.flush()
        self._blobs.close()
        self._ops.close()

    def _op(self, op: str, **fields: object) -> None:
        if self._skip and op in ("write", "truncate", "fsync") and str(fields["path"]).removesuffix(UNLINKED).endswith(self._skip):
            return
        self._seq += 1
        self._line({"op": op, "seq": self._seq, "t": time.monotonic_ns(), **fields})

    def _line(self, obj: dict[str, object]) -> None:
        self._ops.write(json.dumps(obj, separators=(",", ":")) + "\n")


class TraceReader:
    """A recorded trace: its header, the initial files, and its operations as typed records."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        if not lines:
            raise TraceError(f"{self.path}: empty trace")
        head = self._json(lines[0], 1)
        if head.get("format") != FORMAT or head.get("version") != VERSION:
            raise TraceError(f"{self.path}: not a {FORMAT} version {VERSION}: {lines[0][:120]}")
        self.header = Header(version=VERSION, page_size=self._get(head, "page_size", int),
                             wall_ns=self._get(head, "wall_ns", int), mono_ns=self._get(head, "mono_ns", int))
        self._blobs = read_blobs(os.path.join(os.path.dirname(self.path), self._get(head, "blobs", str)))
        self._records = [self._json(line, n) for n, line in enumerate(lines[1:], start=2) if line]
        dirs = tuple(self._get(r, "path", str) for r in self._records if r["op"] == "init-dir")
        files = tuple(InitialFile(path=self._get(r, "path", str), ino=self._get(r, "ino", int),
                                  data=self.blob(self._get(r, "blob", str)))
                      for r in self._records if r["op"] == "init-file")
        self.initial = Initial(dirs=dirs, files=files)

    def ops(self) -> Iterator[Op]:
        """Every recorded operation, in sequence order."""
        for r in self._records:
            name = r["op"]
            if not isinstance(name, str) or name.startswith("init-"):
                continue
            cls = _OPS.get(name)
            if cls is None:
                raise TraceError(f"{self.path}: unknown op {name!r}")
            fields: dict[str, Any] = {}
            for f in dataclasses.fields(cls):
                if f.name == "data":
                    fields["data"] = self._write_data(r)
                else:
                    fields[f.name] = self._get(r, f.name, _TYPES[str(f.type)])
            yield cls(**fields)

    def blob(self, digest: str) -> bytes:
        try:
            return self._blobs[digest]
        except KeyError:
            raise TraceError(f"{self.path}: blob {digest} is missing") from None

    def _get(self, record: dict[str, object], key: str, kind: type[_T]) -> _T:
        value = record.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TraceError(f"{self.path}: {record.get('op', 'header')} record without a {kind.__name__} {key!r}")
        return value

    def _write_data(self, r: dict[str, object]) -> bytes:
        data = self.blob(self._get(r, "blob", str))
        if len(data) != self._get(r, "length", int):
            raise TraceError(f"{self.path}: write {r['seq']} has {len(data)} bytes, says {r['length']}")
        return data

    def _json(self, line: str, n: int) -> dict[str, object]:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{self.path}:{n}: {exc}") from None
        if not isinstance(obj, dict):
            raise TraceError(f"{self.path}:{n}: not a JSON object")
        return obj


def rebuild(reader: TraceReader) -> dict[str, bytes]:
    """The files (path -> content) after applying every recorded operation to the initial files:
    the state a clean, synced stop leaves. Directories are not listed."""
    content: dict[int, bytearray] = {f.ino: bytearray(f.data) for f in reader.initial.files}
    names: dict[str, int] = {f.path: f.ino for f in reader.initial.files}
    for op in reader.ops():
        if isinstance(op, Write):
            buf = content[op.ino]
            if op.offset > len(buf):
                buf.extend(bytes(op.offset - len(buf)))
            buf[op.offset : op.offset + op.length] = op.data
        elif isinstance(op, Truncate):
            buf = content[op.ino]
            del buf[op.size :]
            buf.extend(bytes(op.size - len(buf)))
        elif isinstance(op, Create):
            content[op.ino] = bytearray()
            names[op.path] = op.ino
        elif isinstance(op, Rename):
            prefix = op.src + "/"
            for path in [p for p in names if p == op.src or p.startswith(prefix)]:
                names[op.dst + path[len(op.src):]] = names.pop(path)
        elif isinstance(op, Unlink):
            names.pop(op.path, None)
    return {path: bytes(content[ino]) for path, ino in sorted(names.items())}


class MarkClient:
    """A process's connection to the daemon's mark socket: `mark(label)` returns once it is recorded."""

    def __init__(self, socket_path: str | os.PathLike[str]) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(os.fspath(socket_path))

    def mark(self, label: str) -> None:
        if "\n" in label:
            raise TraceError(f"a mark label is one line: {label!r}")
        self._sock.sendall(label.encode() + b"\n")
        if self._sock.recv(1) != b"K":
            raise TraceError("the lossyfs daemon closed the mark socket")

    def close(self) -> None:
        self._sock.close()
