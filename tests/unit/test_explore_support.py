"""Recorded traces without FUSE, for the exploration's unit tests.

``SnapshotRecorder`` writes what lossyfs would record for a directory that a real SQLite writer
(``FakeWorkload``) changes: after each step, per file, a create, a truncate, the changed 4 KiB
runs as writes, and an fsync -- or no fsync, to make a disk that lies about syncing (the known-bad
case). Steps end with the workload's mark (``ready 0``, ``ack <index>``). ``trace_dir`` adds the
ledger and recording.json, so the result is a trace directory like a recording machine leaves.
"""

from __future__ import annotations

import pathlib

from repro.explore.tracedir import Recording, TraceDir, write_recording
from repro.lossyfs.trace import TraceWriter
from repro.protocol import Tag, format_line
from test_verify_support import FakeWorkload

PAGE = 4096


class SnapshotRecorder:
    """A trace of ``directory`` built from snapshots (the -shm file is left out, as lossyfs records it
    but exploration ignores its content)."""

    def __init__(self, directory: pathlib.Path, trace: pathlib.Path) -> None:
        self.dir = directory
        self.writer = TraceWriter(trace, PAGE)
        self.files: dict[str, tuple[int, bytes]] = {}
        self.next_ino = 2
        for path in sorted(directory.iterdir()):
            if path.is_file() and not path.name.endswith("-shm"):
                self.files[path.name] = (self.next_ino, path.read_bytes())
                self.writer.initial_file(path.name, self.next_ino, self.files[path.name][1])
                self.next_ino += 1

    def step(self, mark: str | None = None, *, sync: bool = True, dirsync: bool = False) -> None:
        now = {p.name: p.read_bytes() for p in sorted(self.dir.iterdir())
               if p.is_file() and not p.name.endswith("-shm")}
        for name in sorted(set(self.files) - set(now)):
            self.writer.unlink(self.files.pop(name)[0], name)
        for name, data in now.items():
            if name not in self.files:
                self.files[name] = (self.next_ino, b"")
                self.writer.create(self.next_ino, name)
                self.next_ino += 1
            ino, old = self.files[name]
            if data == old:
                continue
            if len(data) < len(old):
                self.writer.truncate(ino, name, len(data))
            for start, end in _changed_runs(old, data):
                self.writer.write(ino, name, start, data[start:end])
            if sync:
                self.writer.fsync(ino, name, True)
            self.files[name] = (ino, data)
        if dirsync:
            self.writer.fsyncdir("")
        if mark is not None:
            self.writer.mark(mark)

    def close(self) -> None:
        self.writer.stop(True)
        self.writer.close()


def _changed_runs(old: bytes, new: bytes) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for start in range(0, len(new), PAGE):
        if new[start:start + PAGE] != old[start:start + PAGE]:
            end = min(start + PAGE, len(new))
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], end)
            else:
                runs.append((start, end))
    return runs


def recorded_run(root: pathlib.Path, commits: int = 12, *, lying_fsync_from: int | None = None,
                 synchronous: int = 2) -> TraceDir:
    """A WAL store written one message per commit, recorded as a trace directory under ``root``.

    From commit ``lying_fsync_from`` on, the commits are acknowledged without their fsync: what a
    disk that ignores fsync does, and what no configuration that promises durability may survive.
    """
    data, out = root / "data", root / "trace"
    data.mkdir(parents=True)
    out.mkdir()
    w = FakeWorkload(data / "state.db", journal_mode="wal", synchronous=synchronous)
    w.conn.execute("PRAGMA wal_autocheckpoint=0")
    w.create_session("s1")
    rec = SnapshotRecorder(data, out / "trace.jsonl")
    rec.writer.mark("ready 1")  # the session was created before recording started
    for n in range(commits):
        w.append("s1", f"message {n} " + "lighthouse " * (40 + 13 * n))
        lying = lying_fsync_from is not None and n + 1 >= lying_fsync_from
        rec.step(f"ack {n + 2}", sync=not lying)
    w.close()
    rec.close()
    write_recording(out, Recording(source="test_explore_support.recorded_run"),
                    w.log())
    return TraceDir.open(out)
