"""The image's build context, found in a checkout or in the installed wheel, packed as a tar and hashed.

The repository's docker/ and hermes_state/ are the source of truth. A wheel carries copies of
them as package data (setup.py puts docker/ under ``repro/_image`` and the bundled store under
``repro/_store/hermes_state``, never as a top-level ``hermes_state`` that would shadow a user's),
so ``repro image build`` works from any installed copy. Either way the context is laid out as
the checkout is (``docker/Dockerfile``, ``hermes_state/``, ``repro/...``) and holds exactly what
the Dockerfile's COPY lines name, so its hash changes only when the image's content would.
"""

from __future__ import annotations

import hashlib
import io
import pathlib
import tarfile
from dataclasses import dataclass

import repro
from repro.errors import ImageError

DOCKERFILE = "docker/Dockerfile"
# Package data of an installed wheel (written by setup.py's build step, never in a checkout).
PACKAGED_IMAGE = "_image"
PACKAGED_STORE = "_store"
# Files of docker/ that are not named by a COPY line but ship all the same.
HOST_SCRIPTS = ("make-base.sh",)


@dataclass(frozen=True)
class ContextSources:
    """Where the three parts of the build context are on this machine."""

    docker_dir: pathlib.Path  # Dockerfile, lab-init, s6/, make-base.sh
    store_dir: pathlib.Path   # the bundled hermes_state package
    repro_dir: pathlib.Path   # the lab's own package (its in-machine half is copied)
    origin: str               # "checkout" or "package"

    def resolve(self, source: str) -> pathlib.Path:
        """The file or directory on this machine for a path as the Dockerfile writes it."""
        head, _, rest = source.strip("/").partition("/")
        bases = {"docker": self.docker_dir, "hermes_state": self.store_dir, "repro": self.repro_dir}
        if head not in bases:
            raise ImageError(f"{DOCKERFILE} copies {source!r}, which is outside docker/, hermes_state/ and repro/")
        return bases[head] / rest if rest else bases[head]


def find_sources(repro_dir: pathlib.Path | None = None) -> ContextSources:
    """The installed wheel's package data if there is any, else the checkout around ``repro``."""
    repro_dir = repro_dir or pathlib.Path(repro.__file__).resolve().parent
    packaged = repro_dir / PACKAGED_IMAGE
    if (packaged / "Dockerfile").is_file():
        return ContextSources(packaged, repro_dir / PACKAGED_STORE / "hermes_state", repro_dir, "package")
    root = repro_dir.parent
    if (root / DOCKERFILE).is_file() and (root / "hermes_state" / "__init__.py").is_file():
        return ContextSources(root / "docker", root / "hermes_state", repro_dir, "checkout")
    raise ImageError(f"the image's build context is missing: no {packaged}/Dockerfile (an installed wheel) and no "
                     f"{root / DOCKERFILE} (a checkout); reinstall hermes-lab")


def copy_sources(dockerfile_text: str) -> list[str]:
    """The source paths of every COPY line (flags such as ``--chown`` skipped; ``--from`` lines ignored)."""
    sources: list[str] = []
    for line in dockerfile_text.splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY":
            continue
        args = words[1:]
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        if len(args) < 2:
            raise ImageError(f"{DOCKERFILE}: a COPY line without source and destination: {line.strip()!r}")
        sources += args[:-1]
    return sources


def _files_under(base: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix not in (".pyc", ".pyo"))


def context_files(sources: ContextSources) -> dict[str, pathlib.Path]:
    """Context path -> file on this machine: the Dockerfile and everything its COPY lines name."""
    dockerfile = sources.docker_dir / "Dockerfile"
    files = {DOCKERFILE: dockerfile}
    for source in copy_sources(dockerfile.read_text(encoding="utf-8")):
        path = sources.resolve(source)
        name = source.strip("/")
        if path.is_dir():
            for file in _files_under(path):
                files[f"{name}/{file.relative_to(path).as_posix()}"] = file
        elif path.is_file():
            files[name] = path
        else:
            raise ImageError(f"{DOCKERFILE} copies {source!r}, which is not in the build context ({path})")
    return dict(sorted(files.items()))


def digest(sources: ContextSources, base_image: str) -> str:
    """sha256 of the context's paths and contents and the base image's name (modes are left out:
    the Dockerfile sets them, and a wheel need not keep them)."""
    hasher = hashlib.sha256(f"base={base_image}\n".encode())
    for name, path in context_files(sources).items():
        hasher.update(f"{name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return hasher.hexdigest()


def context_tar(sources: ContextSources) -> bytes:
    """The build context as an uncompressed tar with fixed owners, modes and times (reproducible)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in context_files(sources).items():
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def host_script(sources: ContextSources, name: str) -> pathlib.Path:
    """A script of docker/ the lab runs on the host (make-base.sh)."""
    if name not in HOST_SCRIPTS:
        raise ImageError(f"{name} is not one of the lab's host scripts")
    path = sources.docker_dir / name
    if not path.is_file():
        raise ImageError(f"{path} is missing; reinstall hermes-lab")
    return path
