"""The lab's images in the engine -- the lab image and the stores' derived images, told by their label -- and which `repro clean --images` removes.

The lab image (``hermes-lab:latest``, or ``$HERMES_LAB_IMAGE``) carries ``org.hermes-lab=image``;
a store's derived image (``hermes-lab-store:<hash>``, repro/source/wheels.py) carries
``org.hermes-lab=store-image`` and the id of the lab image it was built on. An image without
that label is never touched, whatever its name. A derived image is cheap to make again (its
wheels are cached; it installs offline); a tagged lab image is not (its build runs apt), so it
goes only when asked (``--all``). An image a container uses -- running or not, of any process --
is kept.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from repro.machine.labels import LAB_LABEL

if TYPE_CHECKING:
    from docker.client import DockerClient

LAB_IMAGE = "image"          # the LAB_LABEL value of the lab image
STORE_IMAGE = "store-image"  # ... and of a store's derived image


@dataclass(frozen=True)
class LabImage:
    """An image with the lab's label, as the engine reports it."""

    id: str
    tags: tuple[str, ...]
    kind: str     # LAB_IMAGE or STORE_IMAGE
    base: str     # a derived image's lab image id ("" for a lab image)
    created: float
    bytes: int    # what removing it alone frees: the layers no other image shares
    containers: int  # containers (running or not) made from it

    @property
    def name(self) -> str:
        return self.tags[0] if self.tags else self.id.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class KeptImage:
    image: LabImage
    reason: str


@dataclass(frozen=True)
class ImagePlan:
    """What `repro clean --images` removes (derived images first: a lab image with children cannot go) and keeps."""

    remove: tuple[LabImage, ...]
    kept: tuple[KeptImage, ...]


def _created(text: object) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")[:26] + "+00:00").timestamp()
    except ValueError:
        return 0.0


def lab_images(cli: DockerClient, scope: Sequence[str] = ()) -> list[LabImage]:
    """Every image with the lab's label (and every label filter in ``scope``), with its unique size and users."""
    rows = cli.api.images(filters={"label": [LAB_LABEL, *scope]})
    users: dict[str, int] = {}
    for container in cli.api.containers(all=True):
        users[container.get("ImageID", "")] = users.get(container.get("ImageID", ""), 0) + 1
    unique: dict[str, int] = {}
    try:  # the engine's own account of shared layers; without it, the image's whole size
        for row in cli.df().get("Images") or []:
            if row.get("SharedSize", -1) >= 0:
                unique[row["Id"]] = int(row["Size"]) - int(row["SharedSize"])
    except Exception:  # noqa: BLE001 -- an engine that cannot say: sizes only
        pass
    found = []
    for row in rows:
        labels = row.get("Labels") or {}
        tags = tuple(t for t in row.get("RepoTags") or () if t != "<none>:<none>")
        found.append(LabImage(id=row["Id"], tags=tags, kind=labels.get(LAB_LABEL, ""),
                              base=labels.get("org.hermes-lab.base-image", "") if labels.get(LAB_LABEL) == STORE_IMAGE
                              else "", created=_created(row.get("Created")),
                              bytes=unique.get(row["Id"], int(row.get("Size") or 0)),
                              containers=users.get(row["Id"], 0)))
    return found


def plan_images(images: Iterable[LabImage], *, current: str, everything: bool = False, now: float = 0.0,
                older_than: float | None = None) -> ImagePlan:
    """Derived images and untagged lab images, unless a container uses them or they were made within
    ``older_than`` seconds; tagged lab images (``current`` among them) only with ``everything``; a lab
    image a kept derived image is built on stays too."""
    remove: list[LabImage] = []
    kept: list[KeptImage] = []
    images = sorted(images, key=lambda i: (i.kind != STORE_IMAGE, i.name))  # derived ones first
    for image in images:
        if image.kind not in (LAB_IMAGE, STORE_IMAGE):
            kept.append(KeptImage(image, f"labelled {LAB_LABEL}={image.kind!r}: not an image the lab builds"))
        elif image.containers:
            kept.append(KeptImage(image, f"used by {image.containers} container(s)"))
        elif image.kind == LAB_IMAGE and image.tags and not everything:
            kept.append(KeptImage(image, ("the current lab image" if current in image.tags else "a tagged lab image")
                                  + ": --all removes it"))
        elif image.kind == LAB_IMAGE and any(k.image.base == image.id for k in kept):
            kept.append(KeptImage(image, "a kept derived image is built on it"))
        elif older_than is not None and now - image.created < older_than:
            kept.append(KeptImage(image, "made recently"))
        else:
            remove.append(image)
    return ImagePlan(tuple(remove), tuple(kept))


def remove_images(cli: DockerClient, images: Iterable[LabImage]) -> list[tuple[LabImage, str]]:
    """Remove these images (each tag, then the image; never forced: the engine refuses an image a container
    uses, or that has children); the ones it refused, with the engine's reason."""
    import docker.errors

    from repro.machine.engine import _short

    failed: list[tuple[LabImage, str]] = []
    for image in images:
        try:
            for tag in image.tags:
                cli.images.remove(tag, noprune=False)
            if not image.tags:
                cli.images.remove(image.id, noprune=False)
        except docker.errors.ImageNotFound:
            pass  # gone meanwhile (its last tag took it)
        except docker.errors.APIError as exc:
            failed.append((image, _short(exc)))
    return failed
