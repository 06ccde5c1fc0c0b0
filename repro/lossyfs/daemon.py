"""The lossyfs daemon: mount the volatile disk with FUSE, write back on a timer, cut on a signal.

Interface (stdout, one line each, flushed, written through repro.protocol):
  LOSSYFS READY {json}    mounted and serving; SIGUSR1 may be sent from now on
  LOSSYFS CUT {json}      the power was cut: what was lost (CutReport fields plus "trigger")
  LOSSYFS STOPPED {json}  clean unmount after SIGTERM/SIGINT ("synced": true unless cut before)
Control: SIGUSR1, or the file given by --cut-file appearing, cuts the power. After the cut no
request is answered (the machine is off: a process touching the mount waits until it is killed,
so it can never observe, let alone acknowledge, anything after the cut) and nothing reaches the
backing directory; the mount stays until SIGTERM/SIGINT, which then unmounts without syncing
(waiting requests then fail with ENOTCONN: kill the processes using the mount first, as the
machine's death does). SIGTERM/SIGINT before a cut is a clean shutdown: everything is persisted
first, like `umount`.

Recording (off by default): --record PATH writes the trace of every change that reaches the
disk model -- initial files, writes, truncates, entry changes, fsyncs, the cut -- to PATH and
PATH.blobs (format in trace.py), which must lie outside the mount and the backing directory.
With --mark-socket SOCK processes may add labelled marks to it (trace.MarkClient); a mark is
recorded between two requests and only then answered. The trace is flushed at every mark,
every writeback step, the cut and the stop.

The mount runs with the kernel's writeback cache (see fuse_ops.py), so written data may sit in
the kernel's page cache of the mount before it reaches the daemon. Before each background
writeback step, and before the clean shutdown's sync, the daemon drains it: syncfs(2) on the
mount, from a worker thread, makes the kernel send every dirty page as WRITE requests (the
daemon keeps them dirty; a drain persists nothing). So the seeded writeback picks among all the
data written up to the step, as it did when every write() was a request.

The drain runs in a small helper process, never in a thread of the daemon: syncfs waits
uninterruptibly for writeback, and after a cut that writeback never ends -- until the daemon's
/dev/fuse descriptor closes and the kernel aborts the connection. A daemon thread stuck there
would keep the daemon (and with it the machine) from ever dying; a helper is not in the way.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import subprocess
import sys

import pyfuse3
import trio

from repro.errors import ExitCode
from repro.lossyfs.disk import ROOT_INO, VolatileDisk
from repro.lossyfs.errors import InvalidOptions, LossyFsError
from repro.lossyfs.fuse_ops import LossyOperations
from repro.lossyfs.model import CacheOptions, Kind
from repro.lossyfs.trace import TraceWriter
from repro.channel import emit as write_record
from repro.channel import open_channel
from repro.protocol import LossyKind, Tag

_CUT_FILE_POLL_S = 0.01
_DRAIN_TIMEOUT_S = 30.0
_DRAIN_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
# The drain helper: for each byte read, syncfs(2) on the mount; answers K (done) or E (failed).
_DRAINER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
while os.read(0, 1):
    os.write(1, b"K" if libc.syncfs(fd) == 0 else b"E")
"""


def emit(kind: LossyKind, payload: dict[str, object]) -> None:
    write_record(Tag.LOSSYFS, payload, sub=kind.value)


@dataclasses.dataclass(frozen=True)
class DaemonOptions:
    """The daemon's command line, typed (its own program's edge: nothing below sees argparse)."""

    backing: str
    mount: str
    seed: int = 0
    writeback_interval_ms: int = 100
    writeback_rate: float = 0.5
    page_size: int = 4096
    torn_writes: bool = False
    lazy_dirs: bool = False
    cut_file: str | None = None
    record: str | None = None
    mark_socket: str | None = None
    no_writeback_cache: bool = False


def parse_args(argv: list[str] | None) -> DaemonOptions:
    p = argparse.ArgumentParser(prog="python3 -m repro.lossyfs", description=__doc__.splitlines()[0])
    p.add_argument("--backing", required=True, help="directory holding what survives (the disk)")
    p.add_argument("--mount", required=True, help="directory to mount the lossy view over")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--writeback-interval-ms", type=int, default=100, help="0 disables background writeback")
    p.add_argument("--writeback-rate", type=float, default=0.5,
                   help="chance that one writeback step persists a given dirty item")
    p.add_argument("--page-size", type=int, default=4096)
    p.add_argument("--torn-writes", action="store_true", help="at the cut, tear one in-flight page at 512 B")
    p.add_argument("--lazy-dirs", action="store_true", help="create/rename/unlink durable only on dir fsync")
    p.add_argument("--cut-file", help="cut the power as soon as this path exists")
    p.add_argument("--record", metavar="PATH", help="record a trace to PATH and PATH.blobs (outside the mount)")
    p.add_argument("--mark-socket", metavar="SOCK", help="with --record: accept labelled marks on this socket")
    p.add_argument("--no-writeback-cache", action="store_true",
                   help="mount without the kernel's writeback cache: every write() reaches the daemon as the process "
                        "made it, in its order, and -shm's data is not recorded (a recording whose shape repeats "
                        "with the seed)")
    return DaemonOptions(**vars(p.parse_args(argv)))


def _inside(path: str, directory: str) -> bool:
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def open_trace(args: DaemonOptions, disk: VolatileDisk) -> TraceWriter | None:
    """The trace writer for --record, the backing directory's files already in it; None if not recording."""
    if args.mark_socket and not args.record:
        raise InvalidOptions("--mark-socket needs --record")
    if not args.record:
        return None
    for directory in (args.mount, args.backing):
        if _inside(args.record, directory):
            raise InvalidOptions(f"the trace {args.record} must lie outside {directory}")
    trace = TraceWriter(args.record, disk.options.page_size,
                        skip_data_of=("-shm",) if args.no_writeback_cache else ())
    pending = [(ROOT_INO, "")]
    while pending:
        ino, base = pending.pop(0)
        for name, st in disk.listdir(ino):
            path = f"{base}/{name}" if base else name
            if st.kind is Kind.DIR:
                trace.initial_dir(path)
                pending.append((st.ino, path))
            else:
                trace.initial_file(path, st.ino, disk.read(st.ino, 0, st.size))
    trace.flush()
    return trace


class Daemon:
    """Owns the disk and the trio tasks around pyfuse3.main."""

    def __init__(self, disk: VolatileDisk, ops: LossyOperations, args: DaemonOptions,
                 trace: TraceWriter | None) -> None:
        self._disk = disk
        self._ops = ops
        self._args = args
        self._trace = trace
        self._drainer: trio.Process | None = None
        self._drain_lock = trio.Lock()

    async def run(self) -> None:
        with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                # One worker: handlers never await (a cut falls between requests), and pyfuse3
                # would otherwise start and retire a task around every request.
                nursery.start_soon(pyfuse3.main, 1, 1)
                if self._args.writeback_interval_ms > 0:
                    nursery.start_soon(self._writeback_loop)
                if self._args.cut_file:
                    nursery.start_soon(self._watch_cut_file)
                if self._args.mark_socket:
                    await nursery.start(self._serve_marks)
                opts = self._disk.options
                recording = {"record": self._args.record, "mark_socket": self._args.mark_socket} if self._trace else {}
                emit(LossyKind.READY, {
                    "pid": os.getpid(), "backing": self._args.backing, "mount": self._args.mount,
                    "seed": opts.seed, "page_size": opts.page_size, "torn_writes": opts.torn_writes,
                    "lazy_dirs": opts.lazy_dirs, "writeback_rate": opts.writeback_rate,
                    "writeback_interval_ms": self._args.writeback_interval_ms, "cut_file": self._args.cut_file,
                    **recording,
                })
                async for signum in signals:
                    if signum == signal.SIGUSR1:
                        self.cut("SIGUSR1")
                        continue
                    synced = not self._disk.is_cut
                    if synced:
                        with trio.move_on_after(_DRAIN_TIMEOUT_S):
                            try:
                                await self._drain()
                            except _DRAIN_ERRORS as exc:
                                print(f"lossyfs: drain before the final sync failed: {exc!r}", file=sys.stderr,
                                      flush=True)
                        if not self._disk.is_cut:
                            self._disk.sync_all()
                        else:  # cut while draining
                            synced = False
                    if self._trace is not None:
                        self._trace.stop(synced)
                    emit(LossyKind.STOPPED, {"signal": signal.Signals(signum).name, "synced": synced})
                    await self._close_drainer()
                    pyfuse3.terminate()
                    nursery.cancel_scope.cancel()
                    return

    def cut(self, trigger: str) -> None:
        if self._disk.is_cut:
            return
        report = self._disk.cut()
        if self._trace is not None:
            self._trace.cut()
        self._ops.invalidate_attrs()  # from now on a write() needs a request too, never answered
        emit(LossyKind.CUT, {"trigger": trigger, **dataclasses.asdict(report)})

    async def _drain(self) -> None:
        """Make the kernel send its dirty pages of the mount to the daemon (syncfs, in the helper)."""
        async with self._drain_lock:  # the writeback loop and a clean stop may drain at once
            await self._drain_locked()

    async def _drain_locked(self) -> None:
        if self._drainer is None:
            # close_fds (the default) keeps /dev/fuse out of the helper: its death must not be needed.
            self._drainer = await trio.lowlevel.open_process(
                [sys.executable, "-I", "-S", "-c", _DRAINER, self._args.mount],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        proc = self._drainer
        assert proc.stdin is not None and proc.stdout is not None
        await proc.stdin.send_all(b"s")
        answer = await proc.stdout.receive_some(1)
        if answer != b"K":
            self._drainer = None
            raise OSError(f"the drain helper failed ({answer!r}, exit {proc.poll()})")

    async def _close_drainer(self) -> None:
        """Let the helper go (stdin EOF); never wait for it: after a cut it may be stuck in syncfs
        until the daemon's exit aborts the connection."""
        if self._drainer is not None:
            proc, self._drainer = self._drainer, None
            if proc.stdin is not None:
                await proc.stdin.aclose()

    async def _writeback_loop(self) -> None:
        interval = self._args.writeback_interval_ms / 1000
        while True:
            await trio.sleep(interval)
            if self._disk.is_cut:
                return
            try:
                await self._drain()
                if self._disk.is_cut:
                    return
                self._disk.writeback()
                if self._trace is not None:
                    self._trace.flush()
            except (LossyFsError, *_DRAIN_ERRORS) as exc:
                print(f"lossyfs: writeback failed: {exc!r}", file=sys.stderr, flush=True)

    async def _serve_marks(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept mark connections; each line read is recorded as a mark, then answered with K."""
        sock = self._args.mark_socket
        assert sock is not None  # started only with --mark-socket
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(sock):
            os.unlink(sock)
        await listener.bind(sock)
        os.chmod(sock, 0o666)  # the workload runs as another user
        listener.listen()
        task_status.started()
        with listener:
            async with trio.open_nursery() as nursery:
                while True:
                    conn, _ = await listener.accept()
                    nursery.start_soon(self._serve_mark_client, conn)

    async def _serve_mark_client(self, conn: trio.socket.SocketType) -> None:
        with conn:
            buf = b""
            while chunk := await conn.recv(4096):
                buf += chunk
                while b"\n" in buf:
                    label, buf = buf.split(b"\n", 1)
                    trace = self._trace
                    if self._disk.is_cut or trace is None:
                        await trio.sleep_forever()  # the machine is off: nothing is answered
                        return
                    trace.mark(label.decode(errors="replace"))
                    await conn.send(b"K")

    async def _watch_cut_file(self) -> None:
        cut_file = self._args.cut_file
        assert cut_file is not None  # started only with --cut-file
        while not self._disk.is_cut:
            if os.path.exists(cut_file):
                self.cut("cut-file")
                return
            await trio.sleep(_CUT_FILE_POLL_S)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    open_channel("lossyfs", isolate=False)  # root, no store: its stdout stays the channel
    try:
        options = CacheOptions(seed=args.seed, page_size=args.page_size, torn_writes=args.torn_writes,
                               lazy_dirs=args.lazy_dirs, writeback_rate=args.writeback_rate)
        disk = VolatileDisk(args.backing, options)
        trace = open_trace(args, disk)
    except LossyFsError as exc:
        print(f"lossyfs: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    os.umask(0)  # the kernel already applied the application's umask to every mode we get
    fuse_options = set(pyfuse3.default_options) | {"fsname=lossyfs", "subtype=lossyfs", "allow_other"}
    ops = LossyOperations(disk, args.backing, trace)
    if args.no_writeback_cache:
        ops.enable_writeback_cache = False  # read by pyfuse3 when the kernel's INIT arrives
    try:
        pyfuse3.init(ops, args.mount, fuse_options)
    except RuntimeError as exc:
        print(f"lossyfs: mount failed: {exc}", file=sys.stderr)
        return ExitCode.LAB_FAILED
    try:
        trio.run(Daemon(disk, ops, args, trace).run)
    finally:
        pyfuse3.close(unmount=True)
        if trace is not None:
            trace.close()
    return ExitCode.OK
