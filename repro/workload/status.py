"""A tiny shared-memory status board between the workload and the in-machine fault agent.

The workload updates it around every store call; the agent polls it to fire a fault
at a precise moment (after N acknowledged writes, or while a write is in flight) with
microsecond latency, which no host-side poll through the engine could give. It lives
on /run (the container's own filesystem), never on the data disk under test.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass

STATUS_PATH = "/run/lab/status"
# pid, in_write, acks, invoked, command, phase
_FORMAT = "<6I"
_SIZE = struct.calcsize(_FORMAT)

IDLE, IN_WRITE = 0, 1
# CMD_GO: the fault agent is watching, a held workload may start (see LAB_HOLD in config.py).
CMD_NONE, CMD_LEAK, CMD_GO = 0, 1, 2
PHASE_STARTING, PHASE_RUNNING, PHASE_STOPPING, PHASE_DONE = 0, 1, 2, 3


@dataclass(frozen=True)
class Snapshot:
    """One read of the board."""

    pid: int
    in_write: int
    acks: int
    invoked: int
    command: int
    phase: int


class StatusBoard:
    """A 24-byte mmap'ed record; single writer per field, torn reads are harmless."""

    def __init__(self, path: str = STATUS_PATH, *, create: bool = False) -> None:
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        fd = os.open(path, flags, 0o666)
        try:
            if create or os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)

    def read(self) -> Snapshot:
        return Snapshot(*struct.unpack(_FORMAT, self._map[:_SIZE]))

    def _set(self, index: int, value: int) -> None:
        struct.pack_into("<I", self._map, index * 4, value & 0xFFFFFFFF)

    def set_pid(self, pid: int) -> None:
        self._set(0, pid)

    def set_in_write(self, flag: int) -> None:
        self._set(1, flag)

    def set_acks(self, acks: int) -> None:
        self._set(2, acks)

    def set_invoked(self, invoked: int) -> None:
        self._set(3, invoked)

    def set_command(self, command: int) -> None:
        self._set(4, command)

    def set_phase(self, phase: int) -> None:
        self._set(5, phase)

    def close(self) -> None:
        self._map.close()
