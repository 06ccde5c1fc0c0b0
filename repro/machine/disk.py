"""The machine's data disk, its inputs, and the holder container that keeps them alive and restarts the machine.

A tmpfs volume loses its contents when no container has it mounted; the holder keeps it
mounted across the death of the machine, so the lab sees exactly what the dead machine left
on disk. The holder has the machine's own limits (repro/machine/limits.py: memory, CPUs,
pids, no capability, uid 1000): it is the restarted machine, whose probe the lab executes in
it once the machine is down (repro/machine/restart.py), instead of starting another container;
a run keeps a disk for its next trial (repro/machine/pool.py). The inputs volume carries what
the machine needs from the lab's side (repro/machine/inputs.py), uploaded through the engine,
so a remote engine works too.
"""

from __future__ import annotations

import io
import pathlib
import shlex
import shutil
import tarfile
from typing import TYPE_CHECKING, Iterable, Mapping

if TYPE_CHECKING:
    from docker.models.containers import Container

from repro.machine import engine  # first: it sets the testcontainers environment

import docker.errors  # noqa: E402
from docker.types import Mount  # noqa: E402

from repro.errors import LabError  # noqa: E402
from repro.machine.cpus import CpuPin  # noqa: E402
from repro.machine.inputs import INPUTS_DIR  # noqa: E402
from repro.machine.labels import IMAGE, labels  # noqa: E402
from repro.machine.limits import holder_settings  # noqa: E402
from repro.scenario import MachineProfile  # noqa: E402
from repro.scenario.profiles import format_size  # noqa: E402

DATA_DIR = "/opt/data"
# Where the holder keeps the database files as the crash left them: a volume of its own on the
# host's disk (not the size-capped data disk, which may be full; the holder's root is read-only),
# removed with the holder.
KEEP_DIR = "/var/lib/crash-state"
SNAPSHOT_PREFIX = f"{KEEP_DIR}/files-"  # + the machine's id: a kept disk never shows a trial another's copies


class DataDisk:
    """A size-capped tmpfs volume, the inputs volume, and the holder container that keeps them alive."""

    def __init__(self, profile: MachineProfile, *, image: str = IMAGE) -> None:
        self.profile = profile
        self.size = profile.disk
        self.image = image
        self.volume_name = ""
        self.inputs_volume = ""
        self.pin = CpuPin("", "not made yet")  # the CPUs the holder, and so every machine on this disk, run on
        self._holder: Container | None = None
        self.reusable = True  # False once a process of the store may have outlived its probe in the holder

    def create(self, pin: CpuPin | None = None) -> "DataDisk":
        """Make the volumes and the holder (created, not started: see ``start``), pinned as ``pin`` says."""
        self.pin = pin or CpuPin("", "not pinned")
        cpus = self.pin.cpus
        cli = engine.client()
        try:
            self.volume_name = cli.volumes.create(
                driver="local",
                driver_opts={"type": "tmpfs", "device": "tmpfs",
                             "o": f"size={format_size(self.size)},uid=1000,gid=1000,mode=0755"},
                labels=labels("disk"),
            ).name
            self.inputs_volume = cli.volumes.create(driver="local", labels=labels("inputs")).name
            mounts = [Mount(target=DATA_DIR, source=self.volume_name, type="volume"),
                      Mount(target=INPUTS_DIR, source=self.inputs_volume, type="volume"),
                      Mount(target=KEEP_DIR, source=None, type="volume", labels=labels("crash-state"))]
            self._holder = cli.containers.create(self.image, **holder_settings(self.profile, mounts=mounts, cpus=cpus))
        except BaseException:
            self.remove()
            raise
        return self

    def start(self, inputs: bytes = b"") -> "DataDisk":
        """Start the holder and upload the inputs (a tar: repro/machine/inputs.py) into the inputs volume."""
        holder = self.holder
        try:
            holder.start()
        except docker.errors.DockerException as exc:
            raise LabError(f"cannot start the data disk's holder: {engine._short(exc)}") from None
        if inputs:
            self.put(INPUTS_DIR, inputs)
        return self

    def mounts(self) -> list[Mount]:
        """What a machine mounts: the data disk, and its inputs read-only."""
        return [self.mount(), Mount(target=INPUTS_DIR, source=self.inputs_volume, type="volume", read_only=True)]

    @property
    def alive(self) -> bool:
        """Made, and not removed (by its trial, or by a watchdog)."""
        return self._holder is not None and bool(self.volume_name) and bool(self.inputs_volume)

    def mount(self, read_only: bool = False) -> Mount:
        return Mount(target=DATA_DIR, source=self.volume_name, type="volume", read_only=read_only)

    def fetch(self, path: str, dest: pathlib.Path) -> list[str]:
        """Copy a file, or the files of a directory, off the disk or the holder (the machine may be
        dead) into ``dest``; returns the names copied (none if ``path`` does not exist)."""
        holder = self._holder  # one reference: a watchdog may remove the disk meanwhile
        if holder is None:
            return []
        return copy_out(holder, path, dest)

    def put(self, path: str, tar: bytes | Iterable[bytes]) -> None:
        """Unpack a tar stream into ``path`` on the disk through the engine (an upload into the holder's
        volume mount: the engine writes the files, so their pages are not charged to any machine)."""
        try:
            self.holder.put_archive(path, tar)
        except docker.errors.DockerException as exc:
            raise LabError(f"cannot upload into the data disk: {engine._short(exc)}") from None

    def usage(self) -> tuple[int, int]:
        """(bytes used, bytes in all) of the disk, as its filesystem counts them."""
        holder = self._holder
        if holder is None:
            return 0, self.size
        result = holder.exec_run(["stat", "-f", "-c", "%S %b %f", DATA_DIR])
        try:
            block, blocks, free = (int(x) for x in (result.output or b"").split())
        except ValueError:
            raise LabError(f"cannot read the data disk's usage: {(result.output or b'').decode()[:200]}") from None
        return (blocks - free) * block, blocks * block

    def run(self, argv: list[str], environment: Mapping[str, str], user: str = "1000:1000") -> tuple[int, str]:
        """Run a program in the holder -- the restarted machine -- as uid 1000 (or ``user``: root keeps the
        evidence, with no capability); (exit code, output)."""
        result = self.holder.exec_run(argv, environment=dict(environment), user=user)
        return int(result.exit_code or 0), (result.output or b"").decode("utf-8", "replace")

    def remove(self) -> None:
        """Remove the holder (and its crash-state volume), the data disk and the inputs."""
        # Taken before use: the watchdog's thread may remove a hung trial's disk while the trial's does.
        holder, self._holder = self._holder, None
        names, self.volume_name, self.inputs_volume = (self.volume_name, self.inputs_volume), "", ""
        engine.discard(holder, names)

    @property
    def holder_id(self) -> str:
        """The holder container's id ("" when there is none)."""
        holder = self._holder
        return str(holder.id) if holder is not None else ""

    @property
    def holder(self) -> "Container":
        """The holder container (the restarted machine)."""
        holder = self._holder  # one reference: a watchdog may remove the disk meanwhile
        if holder is None:
            raise LabError("the data disk has no holder (not created, or removed)")
        return holder


def snapshot_dir(machine_id: str) -> str:
    """Where the holder keeps the crash state of the machine ``machine_id``."""
    return f"{SNAPSHOT_PREFIX}{machine_id[:12]}"


def snapshot_script(directory: str, names: tuple[str, ...], target: str) -> str:
    """A shell command for the holder, run as root (with no capability), that copies those of ``names``
    that exist in ``directory`` to ``target`` (on the host's disk, not the size-capped data disk, which may
    be full; an earlier machine's copies are removed first), makes the copies read-only and root's --
    out of reach of the store's user, uid 1000 -- and prints ``sha256  name`` for each; it fails only
    if a copy fails."""
    listed = " ".join(shlex.quote(n) for n in names)
    quoted = shlex.quote(target)
    return (f"(chmod -R u+w {SNAPSHOT_PREFIX}* 2>/dev/null; rm -rf {SNAPSHOT_PREFIX}* && mkdir -p {quoted} "
            f"&& cd {shlex.quote(directory)} || exit 0; "
            f"for f in {listed}; do if [ -f \"$f\" ]; then cp \"$f\" {quoted}/ || exit 1; fi; done; "
            f"chmod 0444 {quoted}/* 2>/dev/null; chmod 0555 {quoted}; cd {quoted} && for f in {listed}; do "
            "if [ -f \"$f\" ]; then sha256sum \"$f\" || exit 1; fi; done)")


def copy_out(container: "Container", path: str, dest: pathlib.Path) -> list[str]:
    """Copy a file, or the files of a directory, out of a container (running or stopped) into ``dest``,
    streamed (a grown database is hundreds of MB); returns the names copied (none if ``path`` does not exist)."""
    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as tar:
        for member in tar:
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                name = pathlib.PurePosixPath(member.name).name
                with open(dest / name, "wb") as out:
                    shutil.copyfileobj(extracted, out, 1 << 20)
                copied.append(name)
    return copied


class _ChunkReader(io.RawIOBase):
    """The engine's archive stream (an iterator of byte chunks) as a file, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "bytearray | memoryview") -> int:  # type: ignore[override]
        while not self._left:
            try:
                self._left = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size
