"""The in-machine fault agent: waits on the status board, then fires a fault with microsecond timing.

Started by the lab as root through the engine (``docker exec``) once the workload is
ready: ``python3 -m repro.workload.agent --after-acks N [--in-write] [--delay-us D]
--action ACTION``. It prints one ``AGENT {json}`` line saying when it fired and what the
workload was doing at that instant. Actions:

- ``kill-workload``       SIGKILL to the workload process (a crash without warning)
- ``leak``                the workload starts leaking memory until the kernel OOM-kills it
- ``cut-power``           SIGUSR1 to the lossy filesystem: everything not fsynced is gone
- ``none``                only report the moment (the lab fires from outside)

``--on-write DIR`` sharpens the trigger to the instant the store writes its database:
after the other conditions hold, the agent blocks on inotify (through ctypes: stdlib
only) until the next IN_MODIFY of a ``state.db*`` file in DIR, so a kill lands inside
the commit's page writes rather than anywhere in the call -- the window in which an
unjournaled write can tear the file, as SQLite's own crash tests aim for.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import enum
import os
import select
import struct
import signal
import subprocess
import sys
import time

from repro.channel import emit as write_record
from repro.channel import open_channel
from repro.protocol import Tag
from repro.workload.status import CMD_GO, CMD_LEAK, CMD_NONE, IN_WRITE, STATUS_PATH, StatusBoard


class Action(str, enum.Enum):
    """What the agent does when its trigger comes."""

    KILL_WORKLOAD = "kill-workload"
    LEAK = "leak"
    CUT_POWER = "cut-power"
    NONE = "none"


def busy_wait_us(microseconds: int) -> None:
    end = time.perf_counter_ns() + microseconds * 1000
    while time.perf_counter_ns() < end:
        pass


IN_MODIFY = 0x00000002
_EVENT = struct.Struct("iIII")


class WriteWatch:
    """inotify on a directory: wait for the next write to a file whose name starts with a prefix (or, ``exact``,
    is the prefix: the database file itself, which in WAL mode only a checkpoint writes)."""

    def __init__(self, directory: str, prefix: str = "state.db", exact: bool = False) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, directory.encode(), IN_MODIFY) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
        self.prefix = prefix.encode()
        self.exact = exact

    def drain(self) -> None:
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass

    def wait(self, timeout: float) -> str | None:
        """Block until a matching file is modified; returns its name (None on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            offset = 0
            while offset < len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size: offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if name == self.prefix or (not self.exact and name.startswith(self.prefix)):
                    return name.decode()


def service_pid(name: str) -> int:
    out = subprocess.run(["s6-svstat", "-p", f"/run/s6/services/{name}"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return int(out) if out.isdigit() else -1


def fire(action: Action, board: StatusBoard) -> dict[str, object]:
    snap = board.read()
    if action is Action.KILL_WORKLOAD:
        if snap.pid <= 0:  # os.kill(0, ...) would kill the agent's own process group
            raise RuntimeError("no workload pid on the status board")
        os.kill(snap.pid, signal.SIGKILL)
    elif action is Action.LEAK:
        board.set_command(CMD_LEAK)
    elif action is Action.CUT_POWER:
        pid = service_pid("lossyfs")
        if pid <= 0:
            raise RuntimeError("lossyfs is not running")
        os.kill(pid, signal.SIGUSR1)
    return {"acks": snap.acks, "invoked": snap.invoked, "in_write": snap.in_write,
            "pid": snap.pid, "phase": snap.phase}


# Seconds between the untagged lines a waiting agent prints: `docker exec` output through a client
# with a 60 s read timeout needs a byte now and then (the lab ignores untagged lines).
HEARTBEAT_S = 15.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="repro.workload.agent")
    parser.add_argument("--after-acks", type=int, default=0)
    parser.add_argument("--after-ms", type=int, default=0)
    parser.add_argument("--in-write", action="store_true", help="fire only while a write is in flight")
    parser.add_argument("--delay-us", type=int, default=0, help="busy-wait this long after the trigger")
    parser.add_argument("--action", required=True, type=Action, choices=list(Action))
    parser.add_argument("--on-write", default="", metavar="DIR",
                        help="then wait for the next write to DIR/state.db* (inotify)")
    parser.add_argument("--database-file", action="store_true",
                        help="with --on-write: only a write to DIR/state.db itself (in WAL mode, a checkpoint)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--status", default=STATUS_PATH)
    args = parser.parse_args(argv)
    open_channel("agent", isolate=False)  # root, no store; its output is its exec's, not the machine's log

    board = StatusBoard(args.status)
    watch = WriteWatch(args.on_write, exact=args.database_file) if args.on_write else None
    if board.read().command == CMD_NONE:  # a held workload (LAB_HOLD) starts now that we are watching
        board.set_command(CMD_GO)
    written = ""
    start = time.monotonic()
    deadline = start + args.timeout
    wait_until = start + args.after_ms / 1000.0
    fired_in_write = False
    next_beat = start + HEARTBEAT_S
    while True:
        now = time.monotonic()
        if now >= next_beat:  # a long wait (@random=60000) must not look like a dead exec to the engine's client
            sys.stdout.write(f"agent waiting {now - start:.0f} s\n")
            sys.stdout.flush()
            next_beat += HEARTBEAT_S
        if now > deadline:
            write_record(Tag.AGENT, {"fired": False, "reason": "timeout", **_snap(board)})
            return 1
        snap = board.read()
        if snap.acks >= args.after_acks and now >= wait_until:
            if not args.in_write:
                break
            if snap.in_write == IN_WRITE:
                fired_in_write = True
                break
            continue  # spin: a write starts within about a millisecond
        time.sleep(0.0005)
    if watch is not None:
        watch.drain()
        written = watch.wait(max(0.1, deadline - time.monotonic())) or ""
        if not written:
            write_record(Tag.AGENT, {"fired": False, "reason": "no write seen", **_snap(board)})
            return 1
    if args.delay_us:
        busy_wait_us(args.delay_us)
    fired_at = time.time()  # the host's clock, as the engine's log timestamps (the report's timeline)
    facts = fire(args.action, board)
    write_record(Tag.AGENT, {"fired": True, "action": args.action.value, "waited_s": round(time.monotonic() - start, 4),
                           "fired_at": round(fired_at, 6),
                           "trigger_in_write": fired_in_write, "on_write": written, **facts})
    return 0


def _snap(board: StatusBoard) -> dict[str, object]:
    snap = board.read()
    return {"acks": snap.acks, "invoked": snap.invoked, "in_write": snap.in_write, "phase": snap.phase}


if __name__ == "__main__":
    sys.exit(main())
