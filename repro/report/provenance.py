"""Which code each store of a run was: its source, git commit (dirty or not), the files it imported and their hash."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

from repro.report.jsonfile import ResultsError

BUNDLED = "bundled"
PATH = "path"
REF = "ref"
KINDS = (BUNDLED, PATH, REF)


@dataclass(frozen=True)
class StoreProvenance:
    """One store of a run as it was when the run prepared it (report.json ``run.stores``).

    ``source`` is the store's name in every trial record (``TrialRecord.store``). ``commit`` is the git
    commit of the directory's repository (a path) or the one the ref resolved to; ``dirty`` whether the
    store's directory differs from that commit (None: not in a git repository); ``diff_sha256`` hashes
    that difference. ``imported`` lists the store's files the import check loaded, and ``content_sha256``
    hashes exactly those files (path and bytes), so two runs of the same code show the same hash.
    """

    source: str  # the store as every trial record names it (`store`)
    kind: str  # bundled (the lab's own), path (--store-path) or ref (--store-ref)
    path: str = ""  # the directory the machines mounted (a ref's checkout in the cache)
    commit: str = ""  # a path's repository HEAD, or the commit a ref resolved to ("" outside git)
    dirty: bool | None = None  # the store's directory differs from that commit (None: not in git)
    diff_sha256: str = ""  # sha256 of that difference (git diff HEAD, untracked imported files)
    subject: str = ""  # a ref's commit subject line
    date: str = ""  # a ref's committer date (ISO 8601)
    imported: tuple[str, ...] = ()  # the store's files its import check loaded, relative to path
    content_sha256: str = ""  # sha256 of exactly those files (the bundled store: its whole package)
    preset: str = ""  # the lab's bundled store: the preset it ran
    image: str = ""  # the image derived from the lab's with the store's requirements ("": the lab's own)
    requirements: str = ""  # what --store-requirements named (a file, or auto)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ResultsError(f"store provenance: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def line(self) -> str:
        """One short line: ``/src/app: git 1a2b3c4 (dirty, diff 9f8e7d6c5b4a), 7 files imported, sha256 abcd...``."""
        if self.kind == BUNDLED:
            head = f"bundled store {self.preset}".rstrip() + " (the lab's own hermes_state)"
        else:
            head = self.source
        parts = []
        if self.commit:
            git = f"git {self.commit[:7]}"
            if self.kind == REF and (self.subject or self.date):
                git += f' "{self.subject}"' + (f" {self.date[:10]}" if self.date else "")
            if self.dirty:
                git += f" (dirty, diff {self.diff_sha256[:12]})"
            elif self.dirty is False:
                git += " (clean)"
            parts.append(git)
        elif self.kind == PATH:
            parts.append("not in a git repository")
        if self.imported:
            parts.append(f"{len(self.imported)} file{'s' if len(self.imported) != 1 else ''} imported")
        if self.content_sha256:
            parts.append(f"sha256 {self.content_sha256[:16]}")
        if self.image:
            parts.append(f"image {self.image} (requirements {self.requirements or '?'})")
        return f"{head}: {', '.join(parts)}" if parts else head

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["imported"] = list(self.imported)
        return out

    @classmethod
    def from_dict(cls, data: object) -> StoreProvenance:
        if not isinstance(data, Mapping):
            raise ResultsError("a store's provenance is not an object")
        imported = data.get("imported", [])
        if not isinstance(imported, list):
            raise ResultsError("a store's imported files are not a list")
        dirty = data.get("dirty")
        try:
            return cls(source=str(data["source"]), kind=str(data["kind"]), path=str(data.get("path", "")),
                       commit=str(data.get("commit", "")), dirty=None if dirty is None else bool(dirty),
                       diff_sha256=str(data.get("diff_sha256", "")), subject=str(data.get("subject", "")),
                       date=str(data.get("date", "")), imported=tuple(str(p) for p in imported),
                       content_sha256=str(data.get("content_sha256", "")), preset=str(data.get("preset", "")),
                       image=str(data.get("image", "")), requirements=str(data.get("requirements", "")))
        except KeyError as exc:
            raise ResultsError(f"a store's provenance lacks {exc.args[0]!r}") from exc


def provenance_lines(stores: tuple[StoreProvenance, ...]) -> list[str]:
    """One line per store, in the run's order (none for a report of a lab that recorded no provenance)."""
    return [store.line for store in stores]
