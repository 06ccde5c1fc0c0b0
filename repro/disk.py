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

from repro import engine  # first: it sets the testcontainers environment

import docker.errors  # noqa: E402
from docker.types import Mount  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

from repro.errors import LabError  # noqa: E402
from repro.labels import IMAGE, labels  # noqa: E402
from repro.profiles import format_size  # noqa: E402

DATA_DIR = "/opt/data"


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
                mounts=[Mount(target=DATA_DIR, source=self.volume_name, type="volume")],
                mem_limit="32m", cap_drop=["ALL"], user="1000:1000", pids_limit=16,
                security_opt=["no-new-privileges=true"],
            )
            self._holder = holder.start()
        except BaseException:
            self.remove()
            raise
        return self

    def mount(self, read_only: bool = False) -> Mount:
        return Mount(target=DATA_DIR, source=self.volume_name, type="volume", read_only=read_only)

    def fetch_many(self, directory: str, names: tuple[str, ...], dest: pathlib.Path) -> list[str]:
        """Copy those of ``names`` that exist in ``directory`` off the disk in one round trip
        (one tar through the holder); returns the names copied."""
        if self._holder is None:
            return []
        listed = " ".join(shlex.quote(n) for n in names)
        script = f"cd {shlex.quote(directory)} 2>/dev/null || exit 0; " \
                 f"for f in {listed}; do [ -f \"$f\" ] && echo \"$f\"; done | tar -cf - -T -"
        result = self._holder.get_wrapped_container().exec_run(["sh", "-c", script], demux=True)
        stdout, stderr = result.output if isinstance(result.output, tuple) else (result.output, b"")
        if result.exit_code != 0:
            raise LabError(f"copying {', '.join(names)} off the disk failed: {(stderr or b'').decode()[-200:]}")
        copied: list[str] = []
        if stdout:
            with tarfile.open(fileobj=io.BytesIO(stdout)) as tar:
                for member in tar.getmembers():
                    extracted = tar.extractfile(member) if member.isfile() else None
                    if extracted is not None and member.name in names:
                        (dest / member.name).write_bytes(extracted.read())
                        copied.append(member.name)
        return copied

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
