"""Frozen data the lossy filesystem takes and gives: options, attributes and what a cut lost."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from repro.lossyfs.errors import InvalidOptions

SECTOR_SIZE = 512


class Kind(Enum):
    """What an inode is; the model knows only regular files and directories."""

    FILE = "file"
    DIR = "dir"


class EntryOp(Enum):
    """A change to a directory entry that lazy directories keep pending until a directory fsync."""

    CREATE = "create"
    UNLINK = "unlink"
    RENAME = "rename"


@dataclass(frozen=True)
class CacheOptions:
    """How the volatile cache behaves; every choice the randomness makes comes from `seed`."""

    seed: int = 0
    page_size: int = 4096
    torn_writes: bool = False
    lazy_dirs: bool = False
    # Chance that one writeback step persists a given dirty item (page, size, entry-log prefix).
    writeback_rate: float = 0.5

    def __post_init__(self) -> None:
        if self.page_size <= 0 or self.page_size % SECTOR_SIZE:
            raise InvalidOptions(f"page_size must be a positive multiple of {SECTOR_SIZE}: {self.page_size}")
        if not 0.0 <= self.writeback_rate <= 1.0:
            raise InvalidOptions(f"writeback_rate must be within [0, 1]: {self.writeback_rate}")


@dataclass(frozen=True)
class NodeStat:
    """The attributes of one inode as the application sees them (cache included)."""

    ino: int
    kind: Kind
    size: int
    mode: int
    uid: int
    gid: int
    nlink: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int


@dataclass(frozen=True)
class EntryChange:
    """One logged directory-entry change; `new_*` are set for renames only."""

    op: EntryOp
    dir_path: str
    name: str
    ino: int
    new_dir_path: str = ""
    new_name: str = ""

    def describe(self) -> str:
        old = _join(self.dir_path, self.name)
        if self.op is EntryOp.RENAME:
            return f"rename {old} -> {_join(self.new_dir_path, self.new_name)}"
        return f"{self.op.value} {old}"

    def touches(self, dir_path: str) -> bool:
        return self.dir_path == dir_path or (self.op is EntryOp.RENAME and self.new_dir_path == dir_path)


@dataclass(frozen=True)
class WritebackReport:
    """What one background writeback step persisted."""

    pages_written: int
    sizes_written: int
    entries_committed: int


@dataclass(frozen=True)
class TornPage:
    """The page that was in flight at the cut: only `sectors_written` of it reached the disk."""

    path: str
    page: int
    sectors_written: tuple[int, ...]
    sectors_total: int


@dataclass(frozen=True)
class CutReport:
    """What the power cut discarded (everything not yet persisted) and what it tore."""

    pages_dropped: int
    bytes_dropped: int
    sizes_dropped: int
    files_affected: tuple[str, ...]
    entries_reverted: tuple[str, ...]
    torn: tuple[TornPage, ...]


def _join(dir_path: str, name: str) -> str:
    return f"{dir_path}/{name}" if dir_path else name
