"""Crash points, persistence models and materialised states of hand-written traces, byte for byte."""

from __future__ import annotations

import os
import pathlib
import shutil
import sqlite3

import pytest

from repro.errors import ScenarioError
from repro.explore.image import FrameChecker, image_key, read_frames, read_header, wal_checksum
from repro.explore.materialize import Materializer
from repro.explore.models import PRESETS, PersistenceModel as M
from repro.explore.space import StateSpace, parse_state_id
from repro.explore.timeline import Timeline
from repro.lossyfs.trace import TraceError, TraceReader, TraceWriter

A, B, C = 2, 3, 4  # inodes


def trace(tmp: pathlib.Path, build) -> Timeline:  # type: ignore[no-untyped-def]
    tw = TraceWriter(tmp / "t.jsonl", 4096)
    tw.initial_file("a", A, b"0" * 1000)
    build(tw)
    tw.close()
    return Timeline(TraceReader(tmp / "t.jsonl"))


def files(m: Materializer, spec, dest: pathlib.Path) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    shutil.rmtree(dest, ignore_errors=True)
    m.write(spec, dest)
    return {p.name: p.read_bytes() for p in sorted(dest.iterdir())}


def basic(tw: TraceWriter) -> None:
    tw.mark("ready 0")
    tw.write(A, "a", 0, b"x" * 600)      # seq 2: un-synced until seq 4
    tw.create(B, "b")                    # seq 3
    tw.fsync(A, "a", True)               # seq 4: fdatasync persists seq 2
    tw.mark("ack 1")
    tw.write(A, "a", 512, b"y" * 100)    # seq 6
    tw.write(B, "b", 0, b"z" * 10)       # seq 7
    tw.write(C, "b-shm", 0, b"s" * 10)   # never enumerated (no name, and -shm)
    tw.mark("ack 2")
    tw.unlink(B, "b")                    # seq 10
    tw.fsyncdir("")                      # seq 11


def test_crash_points_follow_every_operation_after_ready_and_know_the_ledger(tmp_path: pathlib.Path) -> None:
    t = trace(tmp_path, basic)
    ops = [t.describe(p.last_op) for p in t.points]
    assert ops[:2] == ["seq 1 mark ready 0", "seq 2 write a 600@0"] and ops[-1] == "seq 11 fsyncdir /"
    after_fsync = t.points[3]
    assert t.describe(after_fsync.last_op) == "seq 4 fdatasync a" and after_fsync.unsynced == ()
    assert (after_fsync.acked, after_fsync.next_ack) == (1, 2)  # the mark after it counts: the stricter reading
    before_ack2 = t.points[5]  # after seq 7: writes 6 (a) and 7 (b) volatile
    assert [t.describe(p) for p in before_ack2.unsynced] == ["seq 6 write a 100@512", "seq 7 write b 10@0"]
    assert (before_ack2.acked, before_ack2.next_ack) == (1, 2)
    after_unlink = t.points[-2]
    assert [t.describe(p) for p in after_unlink.unsynced] == ["seq 6 write a 100@512"]  # b has no name
    assert [t.describe(p) for p in after_unlink.pending] == ["seq 3 create b", "seq 10 unlink b"]
    assert t.points[-1].pending == () and t.points[-1].dir_sync_ack == 2


def test_every_model_counts_and_names_its_states(tmp_path: pathlib.Path) -> None:
    t = trace(tmp_path, basic)
    space = StateSpace(t)
    assert space.total(M.SYNCED_ONLY) == len(t.points)
    assert space.total(M.PREFIX) == sum(len(p.unsynced) + 1 for p in t.points)
    assert space.total(M.REORDER_ONE) == sum(len(p.unsynced) for p in t.points)  # all writes here
    # torn: right after seq 2 (600 bytes: 2 sectors), seq 6 (100@512: 1 sector), seq 7 (1 sector)
    assert space.total(M.TORN) == 1
    torn = space.spec(M.TORN, 0)
    assert torn.torn is not None and (torn.torn.kept, torn.torn.total) == (1, 2)
    assert space.total(M.LAZY_DIRS) == sum(len(p.pending) + 1 for p in t.points)
    prefix = [space.spec(M.PREFIX, i) for i in range(space.total(M.PREFIX))]
    assert all(len(s.persisted) + len(s.dropped) == len(s.point.unsynced) for s in prefix)
    assert parse_state_id(prefix[3].state_id) == (M.PREFIX, 3)
    with pytest.raises(ScenarioError, match=r"torn has 1 states \(0\.\.0\)"):
        space.spec(M.TORN, 3)
    for bad in ("prefix", "nope:1", "prefix:-1", "prefix:x"):
        with pytest.raises(ScenarioError):
            parse_state_id(bad)


def test_states_hold_exactly_what_their_model_says(tmp_path: pathlib.Path) -> None:
    t = trace(tmp_path, basic)
    space = StateSpace(t)
    m = Materializer(t, tmp_path / "work")
    out = tmp_path / "out"
    first = space.spec(M.SYNCED_ONLY, 0)  # right after READY
    assert files(m, first, out) == {"a": b"0" * 1000}
    assert files(m, space.spec(M.SYNCED_ONLY, 2), out) == {"a": b"0" * 1000, "b": b""}  # the create is durable
    assert files(m, space.spec(M.SYNCED_ONLY, 1), out) == {"a": b"0" * 1000}  # seq 2 not synced yet
    torn = space.spec(M.TORN, 0)  # seq 2 reached the disk as its first sector only
    assert files(m, torn, out)["a"] == b"x" * 512 + b"0" * 488
    at = next(i for i in range(space.total(M.PREFIX)) if space.spec(M.PREFIX, i).point.index == 5)
    assert files(m, space.spec(M.PREFIX, at), out) == {"a": b"x" * 600 + b"0" * 400, "b": b""}
    assert files(m, space.spec(M.PREFIX, at + 1), out) == {"a": b"x" * 512 + b"y" * 100 + b"0" * 388, "b": b""}
    assert files(m, space.spec(M.PREFIX, at + 2), out) == {"a": b"x" * 512 + b"y" * 100 + b"0" * 388,
                                                           "b": b"z" * 10}
    drop_first = next(i for i in range(space.total(M.REORDER_ONE))
                      if space.spec(M.REORDER_ONE, i).point.index == 5)
    assert files(m, space.spec(M.REORDER_ONE, drop_first), out)["b"] == b"z" * 10  # seq 6 dropped, 7 kept
    # lazy directories, crash after the unlink, before fsyncdir: b may be back, or never created
    lazy = [space.spec(M.LAZY_DIRS, i) for i in range(space.total(M.LAZY_DIRS))
            if space.spec(M.LAZY_DIRS, i).point.index == len(t.points) - 2]
    assert [sorted(files(m, s, out)) for s in lazy] == [["a"], ["a", "b"], ["a"]]
    # an earlier state after a later one: the work directory goes back, the bytes are the same
    assert files(m, first, out) == {"a": b"0" * 1000} and m.stats.rewinds >= 1


def test_in_memory_reads_agree_with_the_written_files(tmp_path: pathlib.Path) -> None:
    t = trace(tmp_path, basic)
    space = StateSpace(t)
    m = Materializer(t, tmp_path / "work")
    for model in PRESETS.values():
        for i in range(space.total(model)):
            spec = space.spec(model, i)
            written = files(m, spec, tmp_path / "out")
            names = m.state_names(spec)
            for name, data in written.items():
                assert m.size(spec, names[name]) == len(data)
                assert m.read(spec, names[name], 0, 4096) == data
                assert m.read(spec, names[name], 500, 30) == data[500:530]


def test_a_trace_without_the_workload_marks_or_cut_short(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TraceError, match="ready"):
        trace(tmp_path, lambda tw: tw.write(A, "a", 0, b"x"))

    def cut(tw: TraceWriter) -> None:
        tw.mark("ready 0")
        tw.write(A, "a", 0, b"x")
        tw.cut()
        tw.write(A, "a", 0, b"never")  # not possible after a cut; ignored if a trace says so

    t = trace(tmp_path, cut)
    assert [t.describe(p.last_op) for p in t.points] == ["seq 1 mark ready 0", "seq 2 write a 1@0"]


def test_sampling_is_seeded_and_exhaustive_when_it_fits(tmp_path: pathlib.Path) -> None:
    space = StateSpace(trace(tmp_path, basic))
    total = space.total(M.PREFIX)
    assert space.select(M.PREFIX, total, 1).exhaustive
    a, b = space.select(M.PREFIX, 3, 7), space.select(M.PREFIX, 3, 7)
    assert not a.exhaustive and a.indices == b.indices and len(a.indices) == 3
    assert space.select(M.PREFIX, 3, 8).indices != a.indices or total < 6


# -- the WAL image --------------------------------------------------------------------------


def wal_db(tmp: pathlib.Path, rows: int) -> tuple[bytes, bytes]:
    conn = sqlite3.connect(tmp / "w.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t(x)")
    for _ in range(rows):
        conn.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
    db, wal = (tmp / "w.db").read_bytes(), (tmp / "w.db-wal").read_bytes()
    conn.close()
    return db, wal


def key(db: bytes, wal: bytes | None) -> bytes | None:
    def digests(size: int) -> list[bytes]:
        import hashlib
        return [hashlib.sha1(db[i:i + size]).digest() for i in range(0, len(db), size)]

    header = read_header(wal[:32]) if wal else None
    parsed = (header, read_frames(header, lambda o, n: wal[o:o + n], len(wal), checker=FrameChecker())) \
        if header is not None and wal else None
    return image_key(len(db), lambda o, n: db[o:o + n], digests, parsed)


def test_the_wal_image_is_what_sqlite_recovers(tmp_path: pathlib.Path) -> None:
    db, wal = wal_db(tmp_path, 30)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "c.db").write_bytes(db)
    (tmp_path / "copy" / "c.db-wal").write_bytes(wal)
    conn = sqlite3.connect(tmp_path / "copy" / "c.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    checkpointed = (tmp_path / "copy" / "c.db").read_bytes()
    assert key(db, wal) == key(checkpointed, None)  # SQLite's own recovery agrees with image.py
    frame = 24 + 4096
    torn = wal[:-100]  # the last commit's last frame torn: the commit is gone, the one before stays
    assert key(db, torn) != key(db, wal)
    header = read_header(wal[:32])
    assert header is not None
    frames = read_frames(header, lambda o, n: wal[o:o + n], len(wal))
    last_commit_before = max(n for n, f in enumerate(frames[:-1]) if f.commit)
    before = wal[:32 + (last_commit_before + 1) * frame]
    assert key(db, torn) == key(db, before)  # a torn tail looks like the tail never written
    flipped = bytearray(wal)
    flipped[32 + 24 + 7] ^= 1  # a bit of the first frame's page: its checksum fails, nothing is committed
    assert key(db, bytes(flipped)) == key(db, None)
    assert key(db, b"junk" * 8 + wal[32:]) == key(db, None)  # a bad header: an empty WAL
    assert wal_checksum(b"\x01\x00\x00\x00\x02\x00\x00\x00", 0, 0, False) == (1, 3)


def test_the_image_does_not_apply_beside_a_rollback_database(tmp_path: pathlib.Path) -> None:
    conn = sqlite3.connect(tmp_path / "r.db")
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    db = (tmp_path / "r.db").read_bytes()
    _, wal = wal_db(tmp_path, 2)
    assert key(db, wal) is None and key(b"", wal) is None
