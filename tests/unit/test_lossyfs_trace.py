"""The lossyfs trace format: what the writer records the reader gives back, typed, with data stored once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repro.lossyfs.blobs import TraceError
from repro.lossyfs.trace import (
    Create,
    Cut,
    Fsync,
    FsyncDir,
    Mark,
    Mkdir,
    Rename,
    Rmdir,
    Stop,
    TraceReader,
    TraceWriter,
    Truncate,
    Unlink,
    Write,
    blob_path,
    rebuild,
)


def _record_every_kind(path: Path) -> None:
    w = TraceWriter(path, page_size=4096)
    w.initial_dir("sub")
    w.initial_file("state.db", 2, b"\x01" * 8192)
    w.initial_file("sub/old", 3, b"old")
    w.create(4, "state.db-wal")
    w.write(4, "state.db-wal", 0, b"frame" * 1000)
    w.write(4, "state.db-wal", 10_000, b"\x00" * 4096)  # past the end: a gap of zeros
    w.fsync(4, "state.db-wal", True)
    w.mark("ack 1")
    w.write(2, "state.db", 4096, b"page" * 1024)
    w.truncate(2, "state.db", 6000)
    w.fsync(2, "state.db", False)
    w.mkdir("new")
    w.rename(3, "sub/old", "new/moved")
    w.rmdir("sub")
    w.unlink(4, "state.db-wal")
    w.fsyncdir("")
    w.cut()
    w.stop(False)
    w.close()


def test_every_op_kind_round_trips_in_order_with_its_data(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    _record_every_kind(trace)
    r = TraceReader(trace)

    assert r.header.page_size == 4096 and r.header.version == 1
    assert r.initial.dirs == ("sub",)
    assert [(f.path, f.ino, f.data) for f in r.initial.files] == [("state.db", 2, b"\x01" * 8192),
                                                                  ("sub/old", 3, b"old")]
    ops = list(r.ops())
    assert [op.seq for op in ops] == list(range(1, len(ops) + 1))
    assert all(a.t <= b.t for a, b in zip(ops, ops[1:]))
    assert [type(op) for op in ops] == [Create, Write, Write, Fsync, Mark, Write, Truncate, Fsync, Mkdir, Rename,
                                        Rmdir, Unlink, FsyncDir, Cut, Stop]
    first = ops[1]
    assert isinstance(first, Write)
    assert (first.ino, first.path, first.offset, first.length, first.data) == (4, "state.db-wal", 0, 5000,
                                                                               b"frame" * 1000)
    assert ops[3] == Fsync(seq=4, t=ops[3].t, ino=4, path="state.db-wal", datasync=True)
    assert ops[4] == Mark(seq=5, t=ops[4].t, label="ack 1")
    assert ops[6] == Truncate(seq=7, t=ops[6].t, ino=2, path="state.db", size=6000)
    assert ops[9] == Rename(seq=10, t=ops[9].t, ino=3, src="sub/old", dst="new/moved")
    assert ops[11] == Unlink(seq=12, t=ops[11].t, ino=4, path="state.db-wal")
    assert ops[12] == FsyncDir(seq=13, t=ops[12].t, path="")
    assert ops[14] == Stop(seq=15, t=ops[14].t, synced=False)
    with pytest.raises(AttributeError):
        first.offset = 1  # type: ignore[misc]


def test_rebuild_applies_every_op_to_the_initial_files(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    _record_every_kind(trace)
    want_db = bytearray(b"\x01" * 8192)
    want_db[4096:8192] = b"page" * 1024
    assert rebuild(TraceReader(trace)) == {"new/moved": b"old", "state.db": bytes(want_db[:6000])}


def test_rebuild_extends_with_zeros_and_renames_over_a_target(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    w = TraceWriter(trace, page_size=4096)
    w.initial_file("a", 2, b"aaaa")
    w.create(3, "b.tmp")
    w.write(3, "b.tmp", 3, b"xy")
    w.truncate(3, "b.tmp", 8)
    w.rename(3, "b.tmp", "a")
    w.close()
    assert rebuild(TraceReader(trace)) == {"a": b"\x00\x00\x00xy\x00\x00\x00"}


def test_identical_data_is_stored_once_and_compressed(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    page = b"SQLite format 3\x00" + bytes(4080)
    w = TraceWriter(trace, page_size=4096)
    w.create(2, "f")
    for i in range(200):
        w.write(2, "f", (i % 4) * 4096, page)
    w.write(2, "f", 0, os.urandom(4096))  # incompressible: stored raw, still round-trips
    w.close()
    blobs = Path(blob_path(trace)).stat().st_size
    assert blobs < 4096 + 200, blobs  # the repeated page once, compressed, plus the random one raw
    writes = [op for op in TraceReader(trace).ops() if isinstance(op, Write)]
    assert len(writes) == 201 and all(op.data == page for op in writes[:200])
    assert len(writes[200].data) == 4096


def test_a_trace_of_another_format_or_with_a_damaged_blob_is_a_typed_error(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text(json.dumps({"format": "something-else", "version": 1}) + "\n")
    with pytest.raises(TraceError, match="not a lossyfs-trace"):
        TraceReader(other)

    trace = tmp_path / "t.trace"
    w = TraceWriter(trace, page_size=4096)
    w.initial_file("f", 2, b"hello world" * 100)
    w.close()
    raw = bytearray(Path(blob_path(trace)).read_bytes())
    raw[40] ^= 0xFF  # the method byte or the stored length/data: the record no longer checks out
    Path(blob_path(trace)).write_bytes(bytes(raw))
    with pytest.raises(TraceError):
        TraceReader(trace)
