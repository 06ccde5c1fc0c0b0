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

A model is built from four named *parts*, written ``part=choice`` and joined with ``+``
(``dirs=lazy+data=prefix``); a part left out takes its first choice:

- ``data`` -- which un-synced writes and truncates persisted: ``synced`` (none), ``prefix`` (any
  in-order prefix, none .. all), ``drop-K`` (all but a set of 1 .. K un-synced *writes*, K <= 4,
  truncates always kept), ``torn`` (right after an un-synced write: everything un-synced before it
  persisted and the write only as its first j of k 512-byte sectors, j = 1 .. k-1) or
  ``torn-any`` (the same with any subset of its sectors but none and all: 2^k - 2 states);
- ``appends`` -- a write that grew its file and did not persist: ``with-data`` (the size grows
  only with the data), ``zeros`` or ``garbage`` (a second state per crash point where every such
  write left the file grown to its end, the new bytes zeros or the byte 0xA5 -- ALICE's
  "garbage or zero blocks"; the same state twice where no such write was dropped);
- ``dirs`` -- when create/rename/unlink become durable: ``at-once`` (in order, at once: ext4's
  ordered metadata journal committing at every operation, as lossyfs without ``--lazy-dirs``),
  ``ordered`` (in order, at the next journal commit: any fsync/fdatasync of any file, a directory
  fsync, mkdir/rmdir or a clean stop commits every change logged before it, as ext4's jbd2
  commits its whole running transaction; a crash keeps any in-order prefix of the rest) or
  ``lazy`` (in order, only at a directory fsync touching them: any in-order prefix of the rest);
- ``dirsync`` -- ``kept`` or ``skipped``: the trace's directory fsyncs taken as not done. That is
  what a ``SQLITE_DISABLE_DIRSYNC`` build of the same SQLite does: unixSync's directory fsync
  is a side call whose result SQLite ignores, so such a build issues exactly the other
  operations of the trace, without those fsyncs (they matter only with ``dirs`` not at-once).

The states of a crash point are the product of its parts' choices, numbered data first
(fastest), then appends, then dirs. The five models of before are presets with the same names and
the same numbering (``prefix:120`` names the same state as before):
``synced-only`` = ``data=synced``, ``prefix`` = ``data=prefix``, ``reorder-one`` = ``data=drop-1``,
``torn`` = ``data=torn``, ``lazy-dirs`` = ``dirs=lazy``. With ``dirs`` not at-once the oracle judges
the states with lazy directory entries (a rolled-back last commit of a rollback journal without
EXTRA is then allowed).

Assumed of the filesystem: data is durable only when synced, and un-synced data writes reach the
disk in any order and any subset. File attributes other than size (mode, owner, times) are not
modelled. Writes to a file that has no name any more at the crash point cannot be seen after a
crash (under ``dirs`` not at-once such a file may still be named: its un-synced writes are taken
as dropped), so they are not enumerated; nor are writes to SQLite's shared-memory index (``*-shm``),
which the first connection after a crash truncates and rebuilds (os_unix.c,
unixLockSharedMemory): it is materialised as synced-only, i.e. as good as empty.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from repro.errors import ScenarioError

SECTOR_SIZE = 512
GARBAGE = 0xA5  # the byte a grown-but-unwritten append reads as under appends=garbage
MAX_DROP = 4
# Files whose content no check can see after a crash (see above): their writes are not enumerated.
VOLATILE_SUFFIXES = ("-shm",)


class Data(str, enum.Enum):
    """Which un-synced data operations persisted (``drop`` takes its K from the model)."""

    SYNCED = "synced"
    PREFIX = "prefix"
    DROP = "drop"
    TORN = "torn"
    TORN_ANY = "torn-any"


class Appends(str, enum.Enum):
    """Whether a dropped write that grew its file may leave the file grown."""

    WITH_DATA = "with-data"
    ZEROS = "zeros"
    GARBAGE = "garbage"


class Dirs(str, enum.Enum):
    """When directory-entry changes become durable."""

    AT_ONCE = "at-once"
    ORDERED = "ordered"
    LAZY = "lazy"


class DirSync(str, enum.Enum):
    """Whether the trace's directory fsyncs count."""

    KEPT = "kept"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class PersistenceModel:
    """Which un-synced operations a crash state may keep: one choice per part (see the module docstring)."""

    data: Data = Data.SYNCED
    drop: int = 0  # K of data=drop-K
    appends: Appends = Appends.WITH_DATA
    dirs: Dirs = Dirs.AT_ONCE
    dirsync: DirSync = DirSync.KEPT

    SYNCED_ONLY: ClassVar[PersistenceModel]
    PREFIX: ClassVar[PersistenceModel]
    REORDER_ONE: ClassVar[PersistenceModel]
    TORN: ClassVar[PersistenceModel]
    LAZY_DIRS: ClassVar[PersistenceModel]

    def __post_init__(self) -> None:
        if (self.data is Data.DROP) != (1 <= self.drop <= MAX_DROP):
            raise ScenarioError(f"data=drop-K takes K from 1 to {MAX_DROP}")

    @property
    def value(self) -> str:
        """The model's id in state ids and reports: a preset's name, else its parts in a fixed order."""
        preset = _PRESET_NAMES.get(self)
        if preset is not None:
            return preset
        return "+".join(f"{part}={choice}" for part, choice in self.parts() if choice != _DEFAULTS[part])

    def parts(self) -> tuple[tuple[str, str], ...]:
        data = f"drop-{self.drop}" if self.data is Data.DROP else self.data.value
        return (("data", data), ("appends", self.appends.value), ("dirs", self.dirs.value),
                ("dirsync", self.dirsync.value))

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"PersistenceModel({self.value!r})"

    @property
    def lazy_dirs(self) -> bool:
        """Whether the oracle judges this model's states with lazy directory entries."""
        return self.dirs is not Dirs.AT_ONCE

    @classmethod
    def parse(cls, text: str) -> PersistenceModel:
        """A preset's name or ``part=choice+part=choice`` (ScenarioError if it is neither)."""
        text = text.strip()
        if text in PRESETS:
            return PRESETS[text]
        chosen: dict[str, str] = {}
        for item in text.split("+"):
            part, sep, choice = item.strip().partition("=")
            if not sep or part not in CHOICES:
                raise ScenarioError(f"unknown persistence model {text!r}; known: {', '.join(PRESETS)}, all, "
                                    f"{', '.join(FILESYSTEM_PRESETS)}, or parts joined with '+': {model_grammar()}")
            if part in chosen:
                raise ScenarioError(f"persistence model {text!r} gives {part}= twice")
            chosen[part] = choice
        fields: dict[str, object] = {}
        for part, choice in chosen.items():
            fields.update(_choice(part, choice, text))
        model = cls(**fields)  # type: ignore[arg-type]
        return _INTERNED.setdefault(model, model)  # one object per model: a preset's is the preset

    @classmethod
    def parse_list(cls, text: str) -> tuple[PersistenceModel, ...]:
        """``prefix,torn`` -> the models, in the order given; ``all`` -> every preset."""
        if text.strip() == "all":
            return tuple(PRESETS.values())
        models: list[PersistenceModel] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            named = (tuple(PRESETS.values()) if part == "all" else filesystem_models(part)
                     if part in FILESYSTEM_PRESETS else (cls.parse(part),))
            for model in named:
                if model not in models:
                    models.append(model)
        if not models:
            raise ScenarioError("--models names no persistence model")
        return tuple(models)


CHOICES: dict[str, tuple[str, ...]] = {
    "data": tuple(d.value for d in Data if d is not Data.DROP) + tuple(f"drop-{k}" for k in range(1, MAX_DROP + 1)),
    "appends": tuple(a.value for a in Appends),
    "dirs": tuple(d.value for d in Dirs),
    "dirsync": tuple(s.value for s in DirSync),
}
_DEFAULTS = {"data": Data.SYNCED.value, "appends": Appends.WITH_DATA.value, "dirs": Dirs.AT_ONCE.value,
             "dirsync": DirSync.KEPT.value}


def model_grammar() -> str:
    """The parts and their choices, as the CLI's help shows them."""
    return "; ".join(f"{part}={'|'.join(choices)}" for part, choices in CHOICES.items())


def _choice(part: str, choice: str, text: str) -> dict[str, object]:
    if choice not in CHOICES[part]:
        raise ScenarioError(f"persistence model {text!r}: {part}= is one of {', '.join(CHOICES[part])}, "
                            f"not {choice!r}")
    if part == "data":
        if choice.startswith("drop-"):
            return {"data": Data.DROP, "drop": int(choice[len("drop-"):])}
        return {"data": Data(choice)}
    if part == "appends":
        return {"appends": Appends(choice)}
    if part == "dirs":
        return {"dirs": Dirs(choice)}
    return {"dirsync": DirSync(choice)}


PersistenceModel.SYNCED_ONLY = PersistenceModel()
PersistenceModel.PREFIX = PersistenceModel(Data.PREFIX)
PersistenceModel.REORDER_ONE = PersistenceModel(Data.DROP, drop=1)
PersistenceModel.TORN = PersistenceModel(Data.TORN)
PersistenceModel.LAZY_DIRS = PersistenceModel(dirs=Dirs.LAZY)
# The five models of before, by their old names: their state ids stay valid.
PRESETS: dict[str, PersistenceModel] = {
    "synced-only": PersistenceModel.SYNCED_ONLY,
    "prefix": PersistenceModel.PREFIX,
    "reorder-one": PersistenceModel.REORDER_ONE,
    "torn": PersistenceModel.TORN,
    "lazy-dirs": PersistenceModel.LAZY_DIRS,
}
_PRESET_NAMES = {model: name for name, model in PRESETS.items()}
_INTERNED: dict[PersistenceModel, PersistenceModel] = {model: model for model in PRESETS.values()}

# What a kernel filesystem can leave after a power cut, as file-level models: ``--models ext4`` names them all.
# ext4 (data=ordered) and XFS journal their metadata and commit it as a whole at the next journal commit or log
# force (any fsync), so entries are dirs=ordered; un-synced data reaches the disk in writeback order, which may
# leave any prefix, one write left out, or a write torn at a sector. Btrfs's fsync logs the file's own inode
# (its log tree) and leaves other entry changes to the next transaction, so entries are dirs=lazy; copy-on-write
# never tears a block in place. Each is checked against the kernel by `repro explore --compare-models`: every
# class of outcome the filesystem's block-level states show must be shown by its preset's models.
FILESYSTEM_PRESETS: dict[str, tuple[str, ...]] = {
    "ext4": ("dirs=ordered+data=prefix", "dirs=ordered+data=drop-1", "dirs=ordered+data=torn"),
    "xfs": ("dirs=ordered+data=prefix", "dirs=ordered+data=drop-1", "dirs=ordered+data=torn"),
    "btrfs": ("dirs=lazy+data=prefix", "dirs=lazy+data=drop-1"),
}


def filesystem_models(name: str) -> tuple[PersistenceModel, ...]:
    """The file-level models of a filesystem's preset (FILESYSTEM_PRESETS)."""
    return tuple(PersistenceModel.parse(text) for text in FILESYSTEM_PRESETS[name])
