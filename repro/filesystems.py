"""A kernel filesystem for the store's data directory (``--fs``): which one, how it is made and mounted.

With ``--fs`` the store does not write to the lossy filesystem directly: the machine makes a
sparse image file on the lossy mount, formats it with the kernel filesystem's own ``mkfs`` and
mounts it through a loop device, so every block the real filesystem writes and every flush it
issues passes through lossyfs (the loop driver turns a flush into an fsync of its backing file).
This module is the data: the kinds, their ``mkfs`` and mount options, their smallest size, and the
parsing of ``--fs KIND[:OPTION,...]``. Making and mounting happen in the machine (docker/lab-blockfs).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from repro.errors import ScenarioError


class FsKind(str, enum.Enum):
    """The kernel filesystems the lab can put under a store."""

    EXT4 = "ext4"
    XFS = "xfs"
    BTRFS = "btrfs"

    @property
    def mkfs(self) -> tuple[str, ...]:
        """The format command, quiet and forced (the image is new), with mkfs's own defaults otherwise."""
        return {FsKind.EXT4: ("mkfs.ext4", "-q", "-F"), FsKind.XFS: ("mkfs.xfs", "-q", "-f"),
                FsKind.BTRFS: ("mkfs.btrfs", "-q", "-f")}[self]

    @property
    def min_size(self) -> int:
        """The smallest image its mkfs accepts: XFS refuses under 300 MB (xfsprogs 5.19 and later), Btrfs
        needs about 110 MB outside mixed mode, ext4 works at a few MB."""
        return {FsKind.EXT4: 8 << 20, FsKind.XFS: 300 << 20, FsKind.BTRFS: 114 << 20}[self]


    @property
    def recovery_options(self) -> str:
        """Mount options for recovering a copy of a state: XFS refuses a second filesystem with a UUID already
        mounted (two checkers, two runs) unless told ``nouuid``; Btrfs mounts a clone of a single-device
        filesystem under a temporary fsid by itself (Linux 6.7 and later)."""
        return "nouuid" if self is FsKind.XFS else ""


class DataMode(str, enum.Enum):
    """ext4's ``data=`` journalling mode (ordered is its default)."""

    ORDERED = "ordered"
    JOURNAL = "journal"
    WRITEBACK = "writeback"


@dataclass(frozen=True)
class FsSpec:
    """One filesystem as a store's disk: kind, ext4's data mode, and whether flushes reach the disk."""

    kind: FsKind
    data: DataMode | None = None  # ext4 only; None: the default (ordered)
    barrier: bool = True  # False: ``nobarrier`` -- no flush request ever reaches the disk

    def __post_init__(self) -> None:
        if self.data is not None and self.kind is not FsKind.EXT4:
            raise ScenarioError(f"data={self.data.value} is an ext4 mount option, not {self.kind.value}'s")
        if not self.barrier and self.kind is FsKind.XFS:
            raise ScenarioError("XFS has no nobarrier any more (removed in Linux 4.19): use ext4 or btrfs "
                                "for a disk that ignores flushes")

    @property
    def mount_options(self) -> tuple[str, ...]:
        options: list[str] = []
        if self.data is not None:
            options.append(f"data={self.data.value}")
        if not self.barrier:
            options.append("nobarrier" if self.kind is FsKind.BTRFS else "barrier=0")
        return tuple(options)

    @property
    def label(self) -> str:
        """``ext4``, ``ext4:data=journal``, ``btrfs:nobarrier``: how reports and ``--fs`` name it."""
        extra = ([f"data={self.data.value}"] if self.data is not None else []) + ([] if self.barrier else ["nobarrier"])
        return self.kind.value + (":" + ",".join(extra) if extra else "")

    def check_size(self, size: int) -> None:
        """ScenarioError when a disk of ``size`` bytes is smaller than this filesystem's minimum."""
        if size < self.kind.min_size:
            raise ScenarioError(f"--fs {self.kind.value} needs a disk of at least {self.kind.min_size >> 20} MB; "
                                f"this one has {size >> 20} MB: give --disk-size {self.kind.min_size >> 20}m "
                                "or a larger profile")

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind.value, "data": self.data.value if self.data else None, "barrier": self.barrier,
                "label": self.label, "mkfs": list(self.kind.mkfs), "mount_options": list(self.mount_options)}

    @classmethod
    def from_json(cls, obj: object) -> FsSpec:
        if not isinstance(obj, dict):
            raise ScenarioError(f"a filesystem is an object, not {type(obj).__name__}")
        return parse(str(obj.get("label", "")))


def parse(text: str) -> FsSpec:
    """``ext4``, ``ext4:data=journal``, ``ext4:nobarrier``, ``btrfs:nobarrier`` -> the spec."""
    name, _, rest = text.strip().partition(":")
    try:
        kind = FsKind(name)
    except ValueError:
        known = ", ".join(k.value for k in FsKind)
        raise ScenarioError(f"unknown filesystem {name!r} for --fs; known: {known}") from None
    data: DataMode | None = None
    barrier = True
    for option in (o.strip() for o in rest.split(",") if o.strip()):
        key, _, value = option.partition("=")
        if option in ("nobarrier", "barrier=0"):
            barrier = False
        elif key == "data":
            try:
                data = DataMode(value)
            except ValueError:
                modes = ", ".join(m.value for m in DataMode)
                raise ScenarioError(f"--fs {text}: data={value} is not one of {modes}") from None
        else:
            raise ScenarioError(f"--fs {text}: unknown option {option!r}; known: data=ordered|journal|writeback, "
                                "nobarrier")
    return FsSpec(kind, data, barrier)
