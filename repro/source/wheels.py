"""A store's third-party packages: wheels resolved and downloaded on the host, installed offline into an image derived from the lab's.

Machines have no network, and containers here cannot reach PyPI over TLS anyway (a self-signed
certificate in the chain that only the host trusts), so pip runs on the host only: ``pip download
--only-binary=:all:`` for the image's Python (CPython 3.11, Debian bookworm's glibc 2.36, the
engine's architecture) into a wheelhouse cached by the requirements' text. The derived image
(``hermes-lab-store:<hash>``, tagged by the lab image's id and the wheels' hashes, built once)
adds one layer: every wheel unzipped into ``/usr/local/lib/python3.11/dist-packages``, a site
directory of Debian's python3 (so ``.pth`` files work), which is what an installer does with a
wheel. The image keeps no pip and its build needs no network; what is not installed is a wheel's
console scripts and data files, which a library import never needs.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tomllib

from repro.caches import make_partial, record_made, touch
from repro.errors import ImageError, ScenarioError, shown
from repro.steps import step

AUTO = "auto"
STORE_IMAGE = "hermes-lab-store"
SITE_DIR = "/usr/local/lib/python3.11/dist-packages"
PYTHON_VERSION = "3.11"
GLIBC_MINOR = 36  # Debian bookworm
REQUIREMENTS_LABEL = "org.hermes-lab.store-requirements"
BASE_LABEL = "org.hermes-lab.base-image"
MADE_BY_LABEL = "org.hermes-lab.made-by-run"  # the run that built a derived image: `repro clean --images --run ID`
PIP_TIMEOUT_S = 900

_INSTALL = f"""
import pathlib, shutil, sys, zipfile
site = pathlib.Path({SITE_DIR!r}); site.mkdir(parents=True, exist_ok=True)
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    for data in site.glob("*.data"):
        for part in ("purelib", "platlib"):
            if (data / part).is_dir():
                shutil.copytree(data / part, site, dirs_exist_ok=True)
        shutil.rmtree(data)
    print("installed", wheel.name)
"""
DOCKERFILE = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY install-wheels.py /tmp/lab-install-wheels.py
COPY wheels/ /tmp/lab-wheels/
RUN python3 /tmp/lab-install-wheels.py /tmp/lab-wheels && rm -rf /tmp/lab-wheels /tmp/lab-install-wheels.py
"""


def requirements_text(requirements: str, store_dir: str) -> tuple[str, pathlib.Path]:
    """The requirement lines and the directory pip resolves relative paths from: the file's, or with
    ``auto`` the store's own requirements.txt, else its pyproject.toml [project] dependencies."""
    base = pathlib.Path(store_dir)
    if requirements != AUTO:
        path = pathlib.Path(requirements)
        try:
            return path.read_text(encoding="utf-8"), path.parent
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"--store-requirements {shown(requirements)}: {exc.__class__.__name__}: "
                                f"{getattr(exc, 'strerror', None) or exc}") from None
    if (base / "requirements.txt").is_file():
        return (base / "requirements.txt").read_text(encoding="utf-8"), base
    if (base / "pyproject.toml").is_file():
        try:
            project = tomllib.loads((base / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"--store-requirements auto: {base / 'pyproject.toml'}: {exc}") from None
        deps = project.get("dependencies") if isinstance(project, dict) else None
        if isinstance(deps, list) and all(isinstance(d, str) for d in deps):
            return "\n".join(deps) + "\n", base
    raise ScenarioError(f"--store-requirements auto: {store_dir} has no requirements.txt and no pyproject.toml "
                        "with [project] dependencies; name a file instead")


def platforms(arch: str) -> list[str]:
    """pip --platform tags the image's glibc runs: manylinux2014 and manylinux_2_17 .. 2_36."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    return [f"manylinux2014_{machine}", *(f"manylinux_2_{minor}_{machine}" for minor in range(17, GLIBC_MINOR + 1))]


def wheelhouse(text: str, cwd: pathlib.Path, cache: pathlib.Path, arch: str) -> pathlib.Path:
    """Download the wheels ``text`` asks for (and their dependencies) for the image's Python, once per
    (requirements text, directory, architecture); an empty list needs no wheel at all."""
    key = hashlib.sha256(f"{arch}\n{cwd}\n{text}".encode()).hexdigest()[:24]
    target = cache / "wheels" / key
    if target.is_dir():
        touch(target)  # a use: `repro clean --caches --older-than` keeps it
        return target
    partial = make_partial(target.parent, f"{key}-")
    try:
        reqs = partial / "requirements.txt"
        reqs.write_text(text, encoding="utf-8")
        (partial / "wheels").mkdir()
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-input",
                "--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
                "--abi", "cp311", "--abi", "abi3", "--abi", "none", *(a for p in platforms(arch)
                                                                       for a in ("--platform", p)),
                "--dest", str(partial / "wheels"), "-r", str(reqs)]
        try:
            with step(f"pip: downloading the store's requirements into {target}"):
                proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ScenarioError(f"--store-requirements: pip download took more than {PIP_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
            error = next((l for l in reversed(lines) if "ERROR" in l), lines[-1] if lines else f"exit {proc.returncode}")
            if "No module named pip" in proc.stderr:
                error = f"this Python ({sys.executable}) has no pip to download wheels with"
            raise ScenarioError(f"--store-requirements: cannot download wheels for the machine's Python "
                                f"{PYTHON_VERSION} ({arch}): {error.strip()}")
        os.replace(partial / "wheels", target)
        from repro.machine.labels import RUN_ID

        record_made(cache, target, RUN_ID)  # `repro clean --caches --run ID`
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def wheels_digest(wheels: pathlib.Path) -> str:
    hasher = hashlib.sha256()
    for wheel in sorted(wheels.glob("*.whl")):
        hasher.update(f"{wheel.name}\0{hashlib.sha256(wheel.read_bytes()).hexdigest()}\n".encode())
    return hasher.hexdigest()


def derived_image(cli: object, base_image: str, wheels: pathlib.Path) -> str:
    """``hermes-lab-store:<hash>``: the lab image with the wheels installed; built once per (lab image id,
    wheels), labelled as the lab's."""
    import docker.errors

    from repro.machine.engine import _short
    from repro.machine.labels import LAB_LABEL, RUN_ID

    base_id = cli.images.get(base_image).id  # type: ignore[attr-defined]
    digest = wheels_digest(wheels)
    key = hashlib.sha256(f"{base_id}\n{digest}".encode()).hexdigest()[:16]
    tag = f"{STORE_IMAGE}:{key}"
    try:
        cli.images.get(tag)  # type: ignore[attr-defined]
        return tag
    except docker.errors.ImageNotFound:
        pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        files = {"Dockerfile": DOCKERFILE.encode(), "install-wheels.py": _INSTALL.encode()}
        files.update({f"wheels/{w.name}": w.read_bytes() for w in sorted(wheels.glob("*.whl"))})
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    try:
        with step(f"building the store's image {tag} (the lab image with its requirements)"):
            cli.images.build(fileobj=io.BytesIO(buf.getvalue()), custom_context=True, tag=tag,  # type: ignore[attr-defined]
                             buildargs={"BASE_IMAGE": base_image}, rm=True, forcerm=True, network_mode="none",
                             labels={LAB_LABEL: "store-image", REQUIREMENTS_LABEL: digest, BASE_LABEL: base_id,
                                     MADE_BY_LABEL: RUN_ID})
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)[-400:]
        raise ImageError(f"the store's image {tag} failed to build: {exc.msg} {tail}") from exc
    except docker.errors.APIError as exc:
        raise ImageError(f"the store's image {tag} failed to build: {_short(exc)}") from exc
    return tag
