"""The persistence models: which un-synced operations may have reached the disk when the power went.

A recorded trace (repro/lossyfs/trace.py) is what reached the filesystem, in order. A *crash
point* is a position in it, right after one operation (the marks that follow it included: a crash
there comes after the acknowledgements they record, the strictest reading). At a crash point
every operation is either *synced* -- durable whatever the model says -- or *un-synced*:

- ``fsync`` and ``fdatasync`` of a file make that file's earlier writes and truncates durable
  (fdatasync is taken as fsync: the model has no timestamps, and a size change needed to read
  the data is persisted by both on Linux);
- ``fsyncdir`` of a directory makes the directory-entry changes (create, rename, unlink) logged
  up to the last one touching that directory durable, in log order (as lossyfs's entry log does);
  ``mkdir`` and ``rmdir`` are durable at once and commit every entry change before them;
- a clean stop (``stop`` with synced) makes everything durable.

Assumed of the filesystem, as ext4 with ``data=ordered`` roughly behaves for metadata: outside
``lazy-dirs`` every directory-entry change is durable at once, in order (its journal commits
metadata in order, and lossyfs without ``--lazy-dirs`` does exactly this); data is durable only
when synced, and un-synced data writes reach the disk in any order and any subset. File
attributes other than size (mode, owner, times) are not modelled. Writes to a file that has no
name any more cannot be seen after a crash, so they are not enumerated; nor are writes to SQLite's
shared-memory index (``*-shm``), which the first connection after a crash truncates and rebuilds
(os_unix.c, unixLockSharedMemory): it is materialised as synced-only, i.e. as good as empty.

The models (each a set of states per crash point):

- ``synced-only``: only what was synced persisted (one state per crash point);
- ``prefix``: the un-synced data operations persisted as any in-order prefix (none .. all);
- ``reorder-one``: every un-synced data operation persisted except exactly one write;
- ``torn``: the crash hits while a write is being transferred: at the crash point right after
  an un-synced write, everything un-synced before it persisted and the write itself persisted
  only as its first j 512-byte sectors (aligned to file offsets), j = 1 .. k-1 of its k sectors;
- ``lazy-dirs``: directory entries need a directory fsync: the un-synced create/rename/unlink
  changes persisted as any in-order prefix (so the last ones may be missing), data as synced-only.
  The oracle judges these states with lazy directory entries (a rolled-back last commit of a
  rollback journal without EXTRA is then allowed).
"""

from __future__ import annotations

import enum

from repro.errors import ScenarioError

SECTOR_SIZE = 512
# Files whose content no check can see after a crash (see above): their writes are not enumerated.
VOLATILE_SUFFIXES = ("-shm",)


class PersistenceModel(str, enum.Enum):
    """Which un-synced operations a crash state may keep."""

    SYNCED_ONLY = "synced-only"
    PREFIX = "prefix"
    REORDER_ONE = "reorder-one"
    TORN = "torn"
    LAZY_DIRS = "lazy-dirs"

    @property
    def lazy_dirs(self) -> bool:
        """Whether the oracle judges this model's states with lazy directory entries."""
        return self is PersistenceModel.LAZY_DIRS

    @classmethod
    def parse_list(cls, text: str) -> tuple[PersistenceModel, ...]:
        """``prefix,torn`` -> the models, in the order given; ``all`` -> every model."""
        if text.strip() == "all":
            return tuple(cls)
        models: list[PersistenceModel] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                model = cls(part)
            except ValueError:
                known = ", ".join(m.value for m in cls)
                raise ScenarioError(f"unknown persistence model {part!r}; known: {known}, or all") from None
            if model not in models:
                models.append(model)
        if not models:
            raise ScenarioError("--models names no persistence model")
        return tuple(models)

