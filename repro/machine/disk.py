"""The machine's data disk: a size-capped tmpfs volume and the holder container that keeps it alive.

A tmpfs volume loses its contents when no container has it mounted; the holder keeps it
mounted across the death of the machine, so the restarted machine (and the lab, when it
collects evidence) sees exactly what the dead one left on disk.
"""

from __future__ import annotations

import io
import pathlib
import shlex
import tarfile
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from docker.models.containers import Container

from repro.machine import engine  # first: it sets the testcontainers environment

import docker.errors  # noqa: E402
from docker.types import Mount  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

from repro.errors import LabError  # noqa: E402
from repro.machine.labels import IMAGE, labels  # noqa: E402
from repro.machine.limits import read_only_root  # noqa: E402
from repro.scenario.profiles import format_size  # noqa: E402

DATA_DIR = "/opt/data"
# Where the holder keeps the database files as the crash left them: a volume of its own on the
# host's disk (not the size-capped data disk, which may be full; the holder's root is read-only),
# removed with the holder.
KEEP_DIR = "/var/lib/crash-state"
SNAPSHOT_DIR = f"{KEEP_DIR}/files"


class DataDisk:
    """A size-capped tmpfs volume and the holder container that keeps its contents alive."""

    def __init__(self, size: int, *, image: str = IMAGE) -> None:
        self.size = size
        self.image = image
        self.volume_name = ""
        self._holder: DockerContainer | None = None

    def create(self) -> "DataDisk":
        cli = engine.client()
        volume = cli.volumes.create(
            driver="local",
            driver_opts={"type": "tmpfs", "device": "tmpfs",
                         "o": f"size={format_size(self.size)},uid=1000,gid=1000,mode=0755"},
            labels=labels("disk"),
        )
        self.volume_name = volume.name
        try:
            holder = DockerContainer(self.image)
            holder.with_kwargs(
                entrypoint=["sleep", "infinity"], network_mode="none", labels=labels("disk-holder"),
                mounts=[Mount(target=DATA_DIR, source=self.volume_name, type="volume"),
                        Mount(target=KEEP_DIR, source=None, type="volume", labels=labels("crash-state"))],
                mem_limit="32m", cap_drop=["ALL"], user="1000:1000", pids_limit=16,
                security_opt=["no-new-privileges=true"], **read_only_root(),
            )
            self._holder = holder.start()
        except BaseException:
            self.remove()
            raise
        return self

    def mount(self, read_only: bool = False) -> Mount:
        return Mount(target=DATA_DIR, source=self.volume_name, type="volume", read_only=read_only)

    def snapshot(self, directory: str, names: tuple[str, ...]) -> list[str]:
        """Copy those of ``names`` that exist in ``directory`` to SNAPSHOT_DIR in the holder's own
        filesystem (the host's disk, not the size-capped data disk, which may be full): one exec,
        a local copy, nothing sent to the lab unless it asks (``fetch``). Returns the names copied."""
        if self._holder is None:
            return []
        listed = " ".join(shlex.quote(n) for n in names)
        script = (f"rm -rf {SNAPSHOT_DIR} && mkdir -p {SNAPSHOT_DIR} && cd {shlex.quote(directory)} || exit 0; "
                  f"for f in {listed}; do if [ -f \"$f\" ]; then cp -p \"$f\" {SNAPSHOT_DIR}/ || exit 1; "
                  "echo \"$f\"; fi; done")
        result = self._holder.get_wrapped_container().exec_run(["sh", "-c", script])
        output = (result.output or b"").decode("utf-8", "replace")
        if result.exit_code != 0:
            raise LabError(f"snapshot of {directory} failed (exit {result.exit_code}): {output.strip()[-200:]}")
        return [line for line in output.splitlines() if line in names]

    def fetch(self, path: str, dest: pathlib.Path) -> list[str]:
        """Copy a file, or the files of a directory, off the disk or the holder (the machine may be
        dead) into ``dest``; returns the names copied (none if ``path`` does not exist)."""
        if self._holder is None:
            return []
        return copy_out(self._holder.get_wrapped_container(), path, dest)

    def put(self, path: str, tar: Iterable[bytes]) -> None:
        """Unpack a tar stream into ``path`` on the disk through the engine (an upload into the holder's
        volume mount: the engine writes the files, so their pages are not charged to any machine)."""
        if self._holder is None:
            raise LabError("the data disk has no holder to upload into")
        try:
            self._holder.get_wrapped_container().put_archive(path, tar)
        except docker.errors.DockerException as exc:
            raise LabError(f"cannot upload into the data disk: {engine._short(exc)}") from None

    def usage(self) -> tuple[int, int]:
        """(bytes used, bytes in all) of the disk, as its filesystem counts them."""
        if self._holder is None:
            return 0, self.size
        result = self._holder.get_wrapped_container().exec_run(["stat", "-f", "-c", "%S %b %f", DATA_DIR])
        try:
            block, blocks, free = (int(x) for x in (result.output or b"").split())
        except ValueError:
            raise LabError(f"cannot read the data disk's usage: {(result.output or b'').decode()[:200]}") from None
        return (blocks - free) * block, blocks * block

    def remove(self) -> None:
        if self._holder is not None:
            try:
                self._holder.stop()
            except docker.errors.DockerException:
                pass
            self._holder = None
        if self.volume_name:
            try:
                engine.client().volumes.get(self.volume_name).remove(force=True)
            except docker.errors.DockerException:
                pass
            self.volume_name = ""


def copy_out(container: "Container", path: str, dest: pathlib.Path) -> list[str]:
    """Copy a file, or the files of a directory, out of a container (running or stopped) into ``dest``;
    returns the names copied (none if ``path`` does not exist)."""
    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                name = pathlib.PurePosixPath(member.name).name
                (dest / name).write_bytes(extracted.read())
                copied.append(name)
    return copied
