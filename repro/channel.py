"""The evidence channel: framed, sequenced protocol records on a descriptor the store under test never prints to.

The workload, the store and the lab's records share one process. Before the store is
imported, ``open_channel`` takes the process's stdout for the lab (a duplicate descriptor,
not inherited by programs the store runs) and points the process's own stdout and stderr
at a pipe. A relay thread reads that pipe and forwards what the store printed as capped
``OUTPUT`` records, JSON-escaped inside frames of their own, so nothing the store prints,
however it is cut, can merge with a record or be taken for one; beyond the cap it is
counted and dropped, so a flood can no longer fill the engine's log. Each record is
framed by ``repro.protocol.frame`` with its source and a sequence number, and goes out in
one ``write()``; the lab checks every source's numbers are 1..n with no gap
(repro/verify/crosscheck.py), so a record that went missing makes the trial an error.

Stdlib only: it runs inside the machine. A process that never calls ``open_channel`` (the
fault agent, the probe's parent shell) writes framed records on its stdout as it is.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from typing import Mapping

from repro.protocol import EventKind, Tag, format_line, frame

# What one process's store output may put on the channel; past it, bytes are counted, not kept.
OUTPUT_CAP = 256 * 1024
# Bytes of store output per OUTPUT record: a record, escaped, stays under PIPE_BUF (4096) and so
# reaches the engine in one atomic write even when other services write at the same time.
CHUNK = 512


class Channel:
    """One process's evidence channel: a source name, a sequence, a descriptor."""

    def __init__(self, source: str, fd: int | None) -> None:
        self.source = source
        self.fd = fd
        self._seq = itertools.count(1)  # next() is atomic under the GIL: threads and signal handlers share it
        self.tees: list[int] = []  # LAB_LEDGER_FILE: the same records on another disk (Compose)

    def write(self, tag: Tag, payload: Mapping[str, object], sub: str = "") -> None:
        text = frame(self.source, next(self._seq), format_line(tag, payload, sub)) + "\n"
        if self.fd is None:  # no channel opened: this process's stdout as it is now, in one write
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            _write_all(self.fd, text.encode("utf-8"))
        for fd in self.tees:
            _write_all(fd, text.encode("utf-8"))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except InterruptedError:
            continue


_current: Channel | None = None
_relay: threading.Thread | None = None


def current() -> Channel:
    """This process's channel: the one ``open_channel`` made, or its stdout under a name made of its pid."""
    global _current
    if _current is None:
        _current = Channel(f"pid{os.getpid()}", None)
    return _current


def open_channel(source: str, *, isolate: bool = True) -> Channel:
    """Make this process's channel ``source``; with ``isolate`` (every process that imports the store),
    stdout and stderr from here on feed the OUTPUT relay instead of the channel."""
    global _current, _relay
    if not isolate:  # no store in this process: its stdout, as it is at each write, is the channel
        _current = Channel(source, None)
        return _current
    sys.stdout.flush()
    sys.stderr.flush()
    evidence = os.dup(1)  # non-inheritable: a program the store runs never gets it
    _current = Channel(source, evidence)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    _relay = threading.Thread(target=_forward, args=(read_end, _current), daemon=True, name="store-output")
    _relay.start()
    return _current


def tee(path: str) -> None:
    """Also append every record of this process to ``path`` (never on the disk under test)."""
    current().tees.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))


def close_channel(timeout: float = 1.0) -> None:
    """At a clean exit: end the store's output and let the relay forward what is left."""
    if _relay is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    _relay.join(timeout)  # a process the store forked may still hold the pipe: then the rest is lost


def _forward(fd: int, channel: Channel) -> None:
    kept = dropped = 0
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            if dropped:
                channel.write(Tag.OUTPUT, {"dropped": dropped})
            return
        room = max(0, OUTPUT_CAP - kept)
        keep, over = data[:room], len(data) - min(room, len(data))
        for start in range(0, len(keep), CHUNK):
            channel.write(Tag.OUTPUT, {"text": keep[start:start + CHUNK].decode("utf-8", "replace")})
        kept += len(keep)
        if over and not dropped:
            channel.write(Tag.OUTPUT, {"capped": OUTPUT_CAP})
        dropped += over


def emit(tag: Tag, payload: Mapping[str, object], sub: str = "") -> None:
    """One record on this process's channel."""
    current().write(tag, payload, sub)


def emit_event(kind: EventKind, **fields: object) -> None:
    """One ``EVENT {"kind": ...}`` record (the lab waits for some of these)."""
    emit(Tag.EVENT, {"kind": kind.value, **fields})
