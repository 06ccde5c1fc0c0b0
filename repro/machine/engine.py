"""The one place the lab talks to the Docker engine directly: client, image build, cleanup."""

from __future__ import annotations

import os
import pathlib
import subprocess
from dataclasses import dataclass

from repro.errors import EngineError, ImageError
from repro.machine.labels import BASE_IMAGE, IMAGE, LAB_LABEL, RUN_LABEL
from repro.machine.owner import PID_LABEL, START_LABEL, Owner

# testcontainers' reaper (Ryuk) is an image from a registry; none is reachable on the
# lab's machines. The lab labels everything and cleans up itself (see cleanup()).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker  # noqa: E402  (after the environment default above)
import docker.errors  # noqa: E402
from docker.client import DockerClient  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def client() -> DockerClient:
    """A client that answers, or EngineError with one clear line."""
    try:
        cli = DockerClient.from_env(timeout=120)
        cli.ping()
    except docker.errors.DockerException as exc:
        raise EngineError(f"no Docker engine answers ({_short(exc)}); run `bash docker/setup.sh`") from None
    return cli


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


@dataclass(frozen=True)
class BuildResult:
    image: str
    image_id: str
    base: str
    base_origin: str  # "local", "pulled" or "debootstrap"


def ensure_base(cli: DockerClient, base: str = BASE_IMAGE) -> str:
    """Find the base image locally, else pull it, else make it offline with debootstrap."""
    try:
        cli.images.get(base)
        return "local"
    except docker.errors.ImageNotFound:
        pass
    try:
        cli.images.pull(base)
        return "pulled"
    except docker.errors.DockerException:
        pass  # no registry: make the same Debian release ourselves
    script = ROOT / "docker" / "make-base.sh"
    proc = subprocess.run(["bash", str(script), base], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageError(f"cannot pull {base} and debootstrap failed: {proc.stderr.strip().splitlines()[-1:]}")
    return "debootstrap"


def build_image(cli: DockerClient | None = None, *, image: str = IMAGE, base: str = BASE_IMAGE) -> BuildResult:
    """Build the lab image (Docker's layer cache makes an unchanged rebuild take seconds)."""
    cli = cli or client()
    origin = ensure_base(cli, base)
    try:
        built, _logs = cli.images.build(
            path=str(ROOT),
            dockerfile="docker/Dockerfile",
            tag=image,
            buildargs={"BASE_IMAGE": base},
            labels={LAB_LABEL: "image"},
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)[-600:]
        raise ImageError(f"image build failed: {exc.msg}\n{tail}") from None
    except docker.errors.APIError as exc:
        raise ImageError(f"image build failed: {_short(exc)}") from None
    try:  # earlier builds of the lab image left untagged: they only fill the disk
        cli.images.prune(filters={"dangling": True, "label": LAB_LABEL})
    except docker.errors.APIError:
        pass
    return BuildResult(image=image, image_id=built.short_id, base=base, base_origin=origin)


def image_present(cli: DockerClient, image: str = IMAGE) -> bool:
    try:
        cli.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


@dataclass(frozen=True)
class CleanupResult:
    containers: int
    volumes: int


def selector(*, run_id: str | None = None, owner: Owner | None = None) -> list[str]:
    """Label filters for the lab's objects: all of them, one run's, or one owner's (run id, pid and the
    pid's start time: a reused pid is another owner)."""
    if owner is not None:
        return [f"{RUN_LABEL}={owner.run_id}", f"{PID_LABEL}={owner.pid}", f"{START_LABEL}={owner.start}"]
    return [f"{RUN_LABEL}={run_id}"] if run_id else [LAB_LABEL]


def cleanup(cli: DockerClient | None = None, *, run_id: str | None = None, owner: Owner | None = None,
            passes: int = 5) -> CleanupResult:
    """Remove every container and volume with the lab's label, or only one run's, or one owner's.

    A trial running in another thread may create a container while this runs (Ctrl-C in
    the middle of a run), so it sweeps until a pass finds nothing, up to ``passes`` times.
    """
    cli = cli or client()
    label = selector(run_id=run_id, owner=owner)
    removed_containers = removed_volumes = 0
    for _ in range(passes):
        containers = cli.containers.list(all=True, filters={"label": label}, sparse=True, ignore_removed=True)
        for container in containers:
            try:
                container.remove(force=True, v=True)
                removed_containers += 1
            except docker.errors.APIError:
                pass  # gone already, or being removed by its trial
        volumes = cli.volumes.list(filters={"label": label})
        for volume in volumes:
            try:
                volume.remove(force=True)
                removed_volumes += 1
            except docker.errors.APIError:
                pass  # still in use by a container created meanwhile: the next pass gets it
        if not containers and not volumes:
            break
    return CleanupResult(containers=removed_containers, volumes=removed_volumes)


def leftovers(cli: DockerClient, run_id: str | None = None) -> tuple[list[str], list[str]]:
    """Names of the lab's containers and volumes still present (of one run, or all)."""
    label = selector(run_id=run_id)
    return ([c.id[:12] for c in cli.containers.list(all=True, filters={"label": label}, sparse=True, ignore_removed=True)],
            [v.name for v in cli.volumes.list(filters={"label": label})])
