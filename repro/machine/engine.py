"""The one place the lab talks to the Docker engine directly: client, image build, cleanup."""

from __future__ import annotations

import enum
import functools
import io
import os
import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from repro.errors import EngineError, ImageError, LabError, ScenarioError, shown
from repro.machine import context
from repro.machine import loops
from repro.machine.names import BASE_IMAGE, CONTEXT_LABEL, IMAGE, LAB_LABEL
from repro.machine.owner import PID_LABEL, RUN_LABEL, START_LABEL, Owner

# testcontainers' reaper (Ryuk) is an image from a registry; none is reachable on the
# lab's machines. The lab labels everything and cleans up itself (see cleanup()).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker  # noqa: E402  (after the environment default above)
import docker.errors  # noqa: E402
from docker.client import DockerClient  # noqa: E402

if TYPE_CHECKING:
    from docker.models.containers import Container


def client() -> DockerClient:
    """A client that answers, or EngineError with one clear line."""
    try:
        cli = DockerClient.from_env(timeout=120)
        cli.ping()
    except docker.errors.DockerException as exc:
        raise EngineError(f"no Docker engine answers ({_short(exc)}); run `bash docker/setup.sh`") from None
    return cli


def _short(exc: BaseException) -> str:
    """One line saying what the engine refused and why: for an API error the engine's own
    explanation ("Cannot locate specified Dockerfile: ..."), never the request URL cut short."""
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        explanation = exc.explanation.decode("utf-8", "replace") if isinstance(exc.explanation, bytes) \
            else str(exc.explanation)
        status = f"{exc.status_code} " if exc.status_code else ""
        return f"{status}{' '.join(explanation.split())}"[:400]
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:400]


class ImageState(str, enum.Enum):
    """The lab image against the build context this installation carries."""

    MISSING = "missing"
    CURRENT = "current"  # built by the lab from this very context
    STALE = "stale"      # built by the lab from other sources (or by a lab before context hashes)
    FOREIGN = "foreign"  # an image of that tag the lab did not build: used as it is
    BUILT = "built"      # just built


@dataclass(frozen=True)
class BuildResult:
    image: str
    image_id: str
    base: str
    base_origin: str  # "local", "pulled" or "debootstrap"
    state: ImageState = ImageState.BUILT
    context: str = ""  # the build context's hash (the image's CONTEXT_LABEL)


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
    script = context.host_script(context.find_sources(), "make-base.sh")
    proc = subprocess.run(["bash", str(script), base], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageError(f"cannot pull {base} and debootstrap failed: {proc.stderr.strip().splitlines()[-1:]}")
    return "debootstrap"


def build_image(cli: DockerClient | None = None, *, image: str = IMAGE, base: str = BASE_IMAGE) -> BuildResult:
    """Build the lab image from the build context this installation carries (repro/machine/context.py);
    Docker's layer cache makes an unchanged rebuild take seconds. The image is labelled with the
    context's hash, so that ``ensure_image`` can tell a current image from a stale one."""
    cli = cli or client()
    sources = context.find_sources()
    context_hash = context.digest(sources, base)
    origin = ensure_base(cli, base)
    try:
        built, _logs = cli.images.build(
            fileobj=io.BytesIO(context.context_tar(sources)),
            custom_context=True,
            dockerfile=context.DOCKERFILE,
            tag=image,
            buildargs={"BASE_IMAGE": base},
            labels={LAB_LABEL: "image", CONTEXT_LABEL: context_hash},
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)[-600:]
        raise ImageError(f"image build failed: {exc.msg}\n{tail}") from exc
    except docker.errors.APIError as exc:
        raise ImageError(f"image build failed: {_short(exc)}") from exc
    try:  # earlier builds of the lab image left untagged: they only fill the disk
        cli.images.prune(filters={"dangling": True, "label": LAB_LABEL})
    except docker.errors.APIError:
        pass
    _current.add((image, context_hash))
    return BuildResult(image=image, image_id=built.short_id, base=base, base_origin=origin, context=context_hash)


@functools.lru_cache(maxsize=None)
def _context_hash(base: str) -> str:
    """The context's hash, computed once per process (the installed files do not change under a run)."""
    return context.digest(context.find_sources(), base)


# (image, context hash) pairs known to be current in this process: machines check once, not per start.
_current: set[tuple[str, str]] = set()
_ensure_lock = threading.Lock()


def image_labels(cli: DockerClient, image: str = IMAGE) -> dict[str, str] | None:
    """The image's labels, or None if there is no such image."""
    try:
        return dict(cli.images.get(image).labels or {})
    except docker.errors.ImageNotFound:
        return None


def image_state(labels: dict[str, str] | None, context_hash: str) -> ImageState:
    """What an image with these labels (None: no image) is, against the context of that hash."""
    if labels is None:
        return ImageState.MISSING
    if labels.get(LAB_LABEL) != "image":
        return ImageState.FOREIGN
    return ImageState.CURRENT if labels.get(CONTEXT_LABEL) == context_hash else ImageState.STALE


def ensure_image(cli: DockerClient | None = None, *, image: str = IMAGE, base: str = BASE_IMAGE) -> BuildResult:
    """Build the lab image only if it is missing or stale; once current, not checked again by this process."""
    context_hash = _context_hash(base)
    with _ensure_lock:
        if (image, context_hash) in _current:
            return BuildResult(image=image, image_id="", base=base, base_origin="local",
                               state=ImageState.CURRENT, context=context_hash)
        cli = cli or client()
        state = image_state(image_labels(cli, image), context_hash)
        if state in (ImageState.MISSING, ImageState.STALE):
            return build_image(cli, image=image, base=base)
        _current.add((image, context_hash))
        return BuildResult(image=image, image_id=cli.images.get(image).short_id, base=base,
                           base_origin="local", state=state, context=context_hash)


def image_name(given: str | None) -> str:
    """The image a command's machines run: the user's --image, else the lab's own (HERMES_LAB_IMAGE or
    hermes-lab:latest)."""
    return IMAGE if given is None else given


def trial_image(cli: DockerClient, given: str | None) -> str:
    """The image decided once per command (run, matrix, hunt, replay, explore, the store check): the lab's
    own, built when missing or stale (its context hash label differs), or the user's --image, which must
    already be on the engine -- bad input, not the lab failing, when it is not."""
    image = image_name(given)
    if given is None:
        ensure_image(cli, image=image)
    elif not image_present(cli, image):
        raise ScenarioError(f"--image {shown(image)} is not on the engine: build or pull it, or leave out --image "
                            "for the lab's own")
    return image


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


def discard(container: Container | None, volumes: Iterable[str] = ()) -> None:
    """Remove one container of the lab's (with its anonymous volumes) and then named volumes, quietly:
    what is gone already, or cannot be removed because no engine answers, is left to the run's cleanup."""
    if container is not None:
        try:
            container.remove(force=True, v=True)
        except docker.errors.DockerException:
            pass
    for name in filter(None, volumes):
        try:
            client().volumes.get(name).remove(force=True)
        except (docker.errors.DockerException, LabError):
            pass


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
    run = run_id or (owner.run_id if owner is not None else None)
    if run is not None and loops.is_local(str(cli.api.base_url)):
        loops.detach_run(run)  # a --fs run's loop devices: by construction none are left (repro/machine/loops.py)
    return CleanupResult(containers=removed_containers, volumes=removed_volumes)


def leftovers(cli: DockerClient, run_id: str | None = None) -> tuple[list[str], list[str]]:
    """Names of the lab's containers and volumes still present (of one run, or all), sorted: the engine
    lists them in no fixed order, and callers compare two listings."""
    label = selector(run_id=run_id)
    return (sorted(c.id[:12] for c in cli.containers.list(all=True, filters={"label": label}, sparse=True,
                                                           ignore_removed=True)),
            sorted(v.name for v in cli.volumes.list(filters={"label": label})))
