"""The lossyfs daemon mounted for real: SQLite on it, a power cut, then the backing files judged."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from repro.lossyfs.control import LossyMount, fuse_unavailable_reason
from repro.protocol import LossyKind


# Skipped locally where FUSE is missing; in CI (`CI` set, as .ci/run does) a missing FUSE is a failure.
_SKIP = None if os.environ.get("CI") else fuse_unavailable_reason()
pytestmark = [pytest.mark.fuse, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

# One-row INSERT + COMMIT per transaction; prints "ACK <id>" only after COMMIT returned.
_WRITER = """
import os, sqlite3, sys
db, sync = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db, isolation_level=None)
c.execute("pragma synchronous=" + sync)
print("READY", flush=True)
i = 0
while True:
    i += 1
    c.execute("begin immediate")
    c.execute("insert into t(id, v) values(?, ?)", (i, os.urandom(1024)))
    c.execute("commit")
    print("ACK", i, flush=True)
"""


@dataclass(frozen=True)
class Outcome:
    acked: int
    integrity: str
    rows: int
    lost_acked: int
    prefix: bool  # the surviving rows are 1..n: whatever was lost is a tail
    pages_dropped: int
    entries_reverted: tuple[str, ...] = ()


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def run_trial(tmp: Path, seed: int, journal: str, sync: str, *, lazy_dirs: bool = False,
              torn_writes: bool = True, interval_ms: int = 20, commits: tuple[int, int] = (50, 400),
              unlink_delay_ms: int = 0) -> Outcome:
    """One power cut under a SQLite writer; `unlink_delay_ms` (strace fault injection) holds every
    unlink()'s return that long and the cut then lands at a random point of the next commit,
    mostly between a rollback journal's unlink and the directory fsync that makes it durable."""
    backing, mount = tmp / f"backing-{seed}", tmp / f"mnt-{seed}"
    backing.mkdir()
    mount.mkdir()
    with sqlite3.connect(backing / "t.db") as setup:  # the schema is durable before the machine starts
        setup.execute(f"pragma journal_mode={journal}")
        setup.execute("create table t(id integer primary key, v blob)")
    setup.close()
    rng = random.Random(seed)
    with LossyMount(backing, mount, seed=seed, writeback_interval_ms=interval_ms, torn_writes=torn_writes,
                    lazy_dirs=lazy_dirs) as lossy:
        argv = [sys.executable, "-c", _WRITER, str(mount / "t.db"), sync]
        if unlink_delay_ms:
            argv = ["strace", "-f", "-o", "/dev/null", "-e", "trace=unlink",
                    "-e", f"inject=unlink:delay_exit={unlink_delay_ms * 1000}", *argv]
        writer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "READY", writer.stderr.read() if writer.stderr else ""
        target = rng.randint(*commits)
        acked = 0
        while acked < target:
            line = writer.stdout.readline()
            assert line.startswith("ACK"), (line, writer.stderr.read() if writer.stderr else "")
            acked = int(line.split()[1])
        if unlink_delay_ms:
            time.sleep(rng.uniform(0.1, 0.9) * unlink_delay_ms / 1000)
        cut = lossy.cut()
        after_cut = _digest(backing)
        time.sleep(0.3)
        # The machine is off: the writer hangs in its next request to the mount, whatever it is.
        frozen = writer.poll() is None
        try:
            os.killpg(writer.pid, signal.SIGKILL)  # the machine dies; only then the daemon (which
        except ProcessLookupError:  # ends the requests it holds, so the killed writer can exit)
            pass
        stopped = lossy.stop()
        rest, _ = writer.communicate(timeout=30)
        # An ACK printed after the cut is still a real one: its COMMIT had its last answer before.
        acked = max([acked] + [int(x.split()[1]) for x in rest.splitlines() if x.startswith("ACK")])
        assert frozen, f"the writer ran on after the power cut (exit {writer.returncode})"
        assert stopped.payload["synced"] is False
        assert _digest(backing) == after_cut, "something reached the backing directory after the cut"

    conn = sqlite3.connect(backing / "t.db")
    try:
        integrity = conn.execute("pragma integrity_check").fetchone()[0]
        ids = {r[0] for r in conn.execute("select id from t")} if integrity == "ok" else set()
    except sqlite3.DatabaseError as exc:
        integrity, ids = f"error: {exc}", set()
    finally:
        conn.close()
    missing = sum(1 for i in range(1, acked + 1) if i not in ids)
    return Outcome(acked=acked, integrity=integrity, rows=len(ids), lost_acked=missing,
                   prefix=ids == set(range(1, len(ids) + 1)),
                   pages_dropped=int(cut.payload["pages_dropped"]),  # type: ignore[call-overload]
                   entries_reverted=tuple(cut.payload["entries_reverted"]))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(3))
def test_wal_full_keeps_every_acknowledged_commit(tmp_path: Path, seed: int) -> None:
    outcome = run_trial(tmp_path, seed, "wal", "full")
    assert outcome.integrity == "ok"
    assert outcome.lost_acked == 0, outcome


def test_wal_off_loses_acknowledged_commits_in_some_trial(tmp_path: Path) -> None:
    outcomes = [run_trial(tmp_path, seed, "wal", "off", interval_ms=50) for seed in range(3)]
    assert any(o.integrity != "ok" or o.lost_acked for o in outcomes), outcomes


# Past ~1000 WAL frames SQLite checkpoints: now OFF can tear the database, NORMAL must not.
# With the kernel's writeback cache an OFF commit needs no request at all, so the writer gets
# through its 1500-2500 commits in a few tenths of a second: writeback steps every 10 ms give it
# about as many steps per commit as 50 ms did when every write() was a request.
def test_wal_off_corrupts_once_checkpoints_run(tmp_path: Path) -> None:
    outcomes = [run_trial(tmp_path, seed, "wal", "off", interval_ms=10, commits=(1500, 2500)) for seed in range(2)]
    assert any(o.integrity != "ok" for o in outcomes), outcomes


def test_wal_normal_loses_only_a_tail_and_never_corrupts(tmp_path: Path) -> None:
    outcomes = [run_trial(tmp_path, seed, "wal", "normal", interval_ms=50, commits=(1500, 2500))
                for seed in range(2)]
    assert all(o.integrity == "ok" and o.prefix for o in outcomes), outcomes
    assert any(o.lost_acked for o in outcomes), outcomes


def test_delete_full_with_lazy_dirs_stays_consistent(tmp_path: Path) -> None:
    outcome = run_trial(tmp_path, 1, "delete", "full", lazy_dirs=True)
    assert outcome.integrity == "ok"
    assert outcome.lost_acked <= 1, outcome  # the last commit may roll back; EXTRA would keep it


# Regression: the power cut used to answer later requests with EIO, and SQLite takes a failure to
# open the directory it fsyncs after unlinking the journal as "cannot sync directories": COMMIT
# returned OK after the cut, and the hot journal the cut brought back rolled the commit back.
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace widens the unlink-to-dirsync window")
def test_delete_extra_with_lazy_dirs_keeps_every_acknowledged_commit(tmp_path: Path) -> None:
    outcomes = [run_trial(tmp_path, seed, "delete", "extra", lazy_dirs=True, torn_writes=False,
                          commits=(5, 20), unlink_delay_ms=50) for seed in range(6)]
    assert all(o.integrity == "ok" and o.lost_acked == 0 and o.prefix for o in outcomes), outcomes
    # The cut did land between a journal's unlink and the directory fsync in some trial.
    assert any("unlink t.db-journal" in o.entries_reverted for o in outcomes), outcomes


def test_nothing_returns_after_the_cut(tmp_path: Path) -> None:
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    probe = "import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nos.fsync(fd)\nprint('returned', flush=True)\n"
    with LossyMount(backing, mount, lazy_dirs=True) as lossy:
        before = subprocess.run([sys.executable, "-c", probe, str(mount)], capture_output=True, text=True, timeout=30)
        assert before.stdout.strip() == "returned", before.stderr
        lossy.cut()
        after = subprocess.Popen([sys.executable, "-c", probe, str(mount)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        hung = after.poll() is None
        after.kill()
        assert lossy.stop().payload["synced"] is False
        out, err = after.communicate(timeout=30)
        assert hung, f"a request was answered after the power cut: {out!r} {err!r}"


def test_shared_memory_mapping_and_posix_locks_work_across_processes(tmp_path: Path) -> None:
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)\n    print('got')\n"
        "except OSError:\n    print('blocked')\n"
    )
    with LossyMount(backing, mount) as lossy:
        db = sqlite3.connect(mount / "t.db", isolation_level=None)
        assert db.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
        db.execute("create table t(x)")
        other = subprocess.run([sys.executable, "-c",
                                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
                                "c.execute('insert into t values (1)'); c.commit()", str(mount / "t.db")],
                               capture_output=True, text=True, timeout=30)
        assert other.returncode == 0, other.stderr
        assert db.execute("select count(*) from t").fetchone()[0] == 1
        db.close()
        import fcntl

        fd = os.open(mount / "t.db", os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
        held = subprocess.run([sys.executable, "-c", probe, str(mount / "t.db")], capture_output=True, text=True)
        os.close(fd)
        free = subprocess.run([sys.executable, "-c", probe, str(mount / "t.db")], capture_output=True, text=True)
        assert (held.stdout.strip(), free.stdout.strip()) == ("blocked", "got")
        assert lossy.stop().kind is LossyKind.STOPPED


# The mount runs with the kernel's writeback cache: written data may sit in the kernel's page
# cache before it reaches the daemon. These pin down that this changes nothing a cut can see.

def test_unsynced_writes_reach_the_seeded_writeback(tmp_path: Path) -> None:
    """The daemon drains the kernel's dirty pages before each writeback step: no fsync needed."""
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    with LossyMount(backing, mount, seed=3, writeback_interval_ms=20) as lossy:
        fd = os.open(mount / "f", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, b"\x5a" * (16 * 4096), 0)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                data = (backing / "f").read_bytes() if (backing / "f").exists() else b""
                if data.count(b"\x5a") == 16 * 4096:
                    break
                time.sleep(0.05)
            assert data.count(b"\x5a") == 16 * 4096, "background writeback never saw the unsynced pages"
        finally:
            os.close(fd)
        assert lossy.stop().payload["synced"] is True


def test_clean_stop_persists_what_the_kernel_still_holds(tmp_path: Path) -> None:
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    payload = os.urandom(10 * 4096 + 123)
    with LossyMount(backing, mount, writeback_interval_ms=0) as lossy:
        fd = os.open(mount / "f", os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(fd, payload, 0)  # no fsync, no close: only in the kernel's page cache
        assert (backing / "f").read_bytes() == b""
        assert lossy.stop().payload["synced"] is True
        try:
            os.close(fd)
        except OSError:
            pass
    assert (backing / "f").read_bytes() == payload


def test_fsync_persists_what_the_kernel_held_and_the_cut_loses_the_rest(tmp_path: Path) -> None:
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    with LossyMount(backing, mount, writeback_interval_ms=0) as lossy:
        a = os.open(mount / "a", os.O_RDWR | os.O_CREAT, 0o644)
        b = os.open(mount / "b", os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(a, b"A" * 5000, 0)
        os.pwrite(b, b"B" * 5000, 0)
        os.fsync(a)
        os.pwrite(a, b"a" * 10, 0)  # after the fsync: lost
        assert (backing / "a").read_bytes() == b"A" * 5000
        assert (backing / "b").read_bytes() == b""
        lossy.cut()
        assert lossy.stop().payload["synced"] is False  # closing first would wait on FLUSH forever
        for fd in (a, b):
            try:
                os.close(fd)
            except OSError:
                pass
    assert (backing / "a").read_bytes() == b"A" * 5000
    assert (backing / "b").read_bytes() == b""


_LATE_WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"x" * 4096, 0)  # the page is now in the kernel's cache: a rewrite needs no READ
print("ready", flush=True)
sys.stdin.readline()
os.pwrite(fd, b"y" * 4096, 0)
print("returned", flush=True)
"""


def test_a_write_into_cached_pages_hangs_after_the_cut(tmp_path: Path) -> None:
    """With the writeback cache a write() needs no request of its own; the cut makes it need one."""
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    with LossyMount(backing, mount, writeback_interval_ms=0) as lossy:
        writer = subprocess.Popen([sys.executable, "-c", _LATE_WRITER, str(mount / "f")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "ready"
        lossy.cut()
        after_cut = _digest(backing)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        time.sleep(0.5)
        hung = writer.poll() is None
        os.killpg(writer.pid, signal.SIGKILL)
        assert lossy.stop().payload["synced"] is False
        out, _ = writer.communicate(timeout=30)
        assert hung and "returned" not in out, f"a write() completed after the power cut: {out!r}"
        assert _digest(backing) == after_cut


_FLOOD = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
chunk, i = os.urandom(64 * 1024), 0
while True:
    os.pwrite(fd, chunk, (i % 256) * len(chunk))
    i += 1
"""


def test_a_killed_daemon_dies_even_with_a_drain_cut_off(tmp_path: Path) -> None:
    """The machine's death must not wait on anything: a drain (syncfs) the cut leaves hanging
    runs in a helper process, so SIGKILL ends the daemon, which aborts the connection."""
    backing, mount = tmp_path / "backing", tmp_path / "mnt"
    backing.mkdir()
    mount.mkdir()
    with LossyMount(backing, mount, writeback_interval_ms=1) as lossy:
        writer = subprocess.Popen([sys.executable, "-c", _FLOOD, str(mount / "f")], start_new_session=True)
        time.sleep(0.5)  # drains back to back under a writer that keeps dirtying pages
        lossy.cut()
        after_cut = _digest(backing)
        started = time.monotonic()
        lossy.kill()  # waits for the daemon to be gone (times out if it cannot die)
        assert time.monotonic() - started < 5
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)  # its requests ended with the connection
        assert _digest(backing) == after_cut


# A small-commit writer on the mount: WAL, synchronous=FULL; after each COMMIT returned it
# sends the mark "ack <i>" to the daemon, which records it before answering.
_RECORDED_WRITER = """
import sqlite3, sys
from repro.lossyfs.trace import MarkClient
db, socket_path, commits = sys.argv[1], sys.argv[2], int(sys.argv[3])
marks = MarkClient(socket_path)
c = sqlite3.connect(db, isolation_level=None)
assert c.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
c.execute("pragma synchronous=full")
for i in range(1, commits + 1):
    c.execute("begin immediate")
    c.execute("insert into messages(session, role, content) values ('s1', 'user', ?)", ("hello %d " % i * 20,))
    c.execute("commit")
    marks.mark("ack %d" % i)
c.close()
marks.close()
"""


def test_record_traces_sqlite_commits_and_replays_to_the_final_files(tmp_path: Path) -> None:
    from repro.lossyfs.trace import Fsync, Mark, TraceReader, Write, blob_path, rebuild

    backing, mount, out = tmp_path / "backing", tmp_path / "mnt", tmp_path / "out"
    for d in (backing, mount, out):
        d.mkdir()
    with sqlite3.connect(backing / "state.db") as setup:  # the initial state the trace must carry
        setup.execute("create table messages(id integer primary key, session text, role text, content text)")
        setup.executemany("insert into messages(session, role, content) values ('s0', 'user', ?)",
                          [("x" * 200,)] * 50)
    setup.close()
    initial_db = (backing / "state.db").read_bytes()
    commits = 300
    trace = out / "trace.jsonl"
    with LossyMount(backing, mount, seed=5, writeback_interval_ms=20, record=trace,
                    mark_socket=out / "marks.sock") as lossy:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        writer = subprocess.run([sys.executable, "-c", _RECORDED_WRITER, str(mount / "state.db"),
                                 str(out / "marks.sock"), str(commits)], capture_output=True, text=True,
                                env=env, timeout=120)
        assert writer.returncode == 0, writer.stderr
        assert lossy.stop().payload["synced"] is True

    reader = TraceReader(trace)
    assert [(f.path, f.data) for f in reader.initial.files] == [("state.db", initial_db)]
    ops = list(reader.ops())
    assert [op.seq for op in ops] == list(range(1, len(ops) + 1))
    marks = [op for op in ops if isinstance(op, Mark)]
    assert [m.label for m in marks] == [f"ack {i}" for i in range(1, commits + 1)]
    # Before each acknowledgement: WAL frames written, then the WAL fsynced, after its last write.
    wal_writes = [op for op in ops if isinstance(op, Write) and op.path == "state.db-wal"]
    assert wal_writes
    wal = wal_writes[0].ino
    previous = 0
    for m in marks:
        window = [op for op in ops if previous < op.seq < m.seq]
        writes = [op.seq for op in window if isinstance(op, Write) and op.ino == wal]
        syncs = [op.seq for op in window if isinstance(op, Fsync) and op.ino == wal]
        assert writes and syncs and max(writes) < max(syncs), (m, window)
        previous = m.seq
    # Every recorded write, applied to the initial files, gives the final files byte for byte.
    final = {p.name: p.read_bytes() for p in backing.iterdir()}
    assert rebuild(reader) == final
    size = trace.stat().st_size + Path(blob_path(trace)).stat().st_size
    print(f"trace of {commits} commits: {len(ops)} ops, {len(wal_writes)} WAL writes, {size} bytes")
    assert size < 4 << 20, size
