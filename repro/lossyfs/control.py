"""Drive a lossyfs daemon from outside: start it, wait for READY, cut the power, stop it, parse its lines."""

from __future__ import annotations

import errno
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Mapping

from repro.lossyfs.errors import LossyFsError
from repro.protocol import Line, LossyKind, Tag, parse_line

DEBIAN_PYTHON = "/usr/bin/python3"  # the interpreter that has Debian's python3-pyfuse3
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DaemonEvent:
    """One `LOSSYFS <KIND> {json}` line of the daemon's stdout, its kind typed."""

    kind: LossyKind
    payload: Mapping[str, object]

    @classmethod
    def from_line(cls, line: Line) -> DaemonEvent | None:
        """The event a parsed machine line carries, or None if it is not a lossyfs line."""
        if line.tag is not Tag.LOSSYFS:
            return None
        try:
            return cls(LossyKind(line.sub), line.payload)
        except ValueError:
            return None


class DaemonError(LossyFsError):
    """The daemon did not start, did not answer in time, or exited unexpectedly."""


def fuse_unavailable_reason(python: str = DEBIAN_PYTHON) -> str | None:
    """Why a local LossyMount cannot run here, or None if it can."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if os.geteuid() != 0:
        return "mounting with allow_other needs root"
    if not shutil.which("fusermount3"):
        return "fuse3 is not installed (apt-get install fuse3)"
    probe = subprocess.run([python, "-c", "import pyfuse3, trio"], capture_output=True)
    if probe.returncode != 0:
        return f"{python} cannot import pyfuse3 (apt-get install python3-pyfuse3)"
    return None


def _dead_mount(path: Path) -> bool:
    """A FUSE mount whose daemon is gone (stat fails with ENOTCONN); ismount() says False there."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


class LossyMount:
    """A lossyfs daemon run as a local subprocess (tests and benchmarks on a host with FUSE)."""

    def __init__(self, backing: Path, mount: Path, *, seed: int = 0, writeback_interval_ms: int = 100,
                 torn_writes: bool = False, lazy_dirs: bool = False, record: Path | None = None,
                 mark_socket: Path | None = None, python: str = DEBIAN_PYTHON, timeout_s: float = 15.0) -> None:
        self.backing = backing
        self.mount = mount
        self._argv = [python, "-m", "repro.lossyfs", "--backing", str(backing), "--mount", str(mount),
                      "--seed", str(seed), "--writeback-interval-ms", str(writeback_interval_ms)]
        self._argv += ["--torn-writes"] * torn_writes + ["--lazy-dirs"] * lazy_dirs
        self._argv += ["--record", str(record)] if record is not None else []
        self._argv += ["--mark-socket", str(mark_socket)] if mark_socket is not None else []
        self._timeout = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._events: queue.Queue[DaemonEvent | None] = queue.Queue()
        self._stderr = tempfile.TemporaryFile(mode="w+")

    def start(self) -> DaemonEvent:
        env = {**os.environ, "PYTHONPATH": str(_REPO_ROOT)}
        self._proc = subprocess.Popen(self._argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        threading.Thread(target=self._read_stdout, args=(self._proc,), daemon=True).start()
        return self._expect(LossyKind.READY)

    def cut(self) -> DaemonEvent:
        """Send SIGUSR1 and return the CUT event (what was lost)."""
        self._signal(signal.SIGUSR1)
        return self._expect(LossyKind.CUT)

    def stop(self) -> DaemonEvent:
        """SIGTERM: a clean unmount (synced unless cut before); returns the STOPPED event."""
        self._signal(signal.SIGTERM)
        event = self._expect(LossyKind.STOPPED)
        assert self._proc is not None
        self._proc.wait(self._timeout)
        return event

    def kill(self) -> int:
        """SIGKILL: the machine dies without warning. Waits until the daemon is gone; its status."""
        if self._proc is None:
            raise DaemonError("lossyfs daemon was never started")
        self._proc.kill()
        return self._proc.wait(self._timeout)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def close(self) -> None:
        """Make sure the daemon is gone and the mount point is free, whatever state it is in."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(self._timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(self._timeout)
        if os.path.ismount(self.mount) or _dead_mount(self.mount):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mount)], check=False, capture_output=True)
        self._stderr.close()

    def __enter__(self) -> LossyMount:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            exc.add_note(f"lossyfs stderr:\n{self.stderr()}")
        self.close()

    def _signal(self, signum: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise DaemonError(f"lossyfs daemon is not running: {self.stderr()}")
        self._proc.send_signal(signum)

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            line = parse_line(text)
            event = DaemonEvent.from_line(line) if line is not None else None
            if event is not None:
                self._events.put(event)
        self._events.put(None)

    def _expect(self, kind: LossyKind) -> DaemonEvent:
        try:
            event = self._events.get(timeout=self._timeout)
        except queue.Empty:
            raise DaemonError(f"no {kind.value} from lossyfs within {self._timeout}s: {self.stderr()}") from None
        if event is None or event.kind is not kind:
            raise DaemonError(f"expected {kind.value} from lossyfs, got {event}: {self.stderr()}")
        return event
