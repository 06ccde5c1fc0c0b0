"""The inode table: directories and files by number, their names, paths and attributes.

Directories are not lossy (mkdir/rmdir reach the backing directory at once); a file's
content is its durable bytes (`durable`) plus the dirty pages the page cache keeps for it.
Attributes other than size (mode, owner, times) are not modelled as lossy either.
"""

from __future__ import annotations

import os
import stat as stat_mod

from repro.lossyfs.durable import BackingFile, Durable
from repro.lossyfs.errors import IsADirectory, NotADirectory, NotFound, Unsupported
from repro.lossyfs.model import Kind, NodeStat

ROOT_INO = 1
UNLINKED = " (unlinked)"  # how a file with no name left is named in the trace (a write's path is informational)
_DIR_SIZE = 4096


class DirNode:
    __slots__ = ("ino", "parent", "name", "entries", "mode", "uid", "gid", "atime_ns", "mtime_ns", "ctime_ns")

    def __init__(self, ino: int, parent: int, name: str, mode: int, uid: int, gid: int, now: int) -> None:
        self.ino = ino
        self.parent = parent
        self.name = name
        self.entries: dict[str, int] = {}
        self.mode = stat_mod.S_IFDIR | (mode & 0o7777)
        self.uid = uid
        self.gid = gid
        self.atime_ns = self.mtime_ns = self.ctime_ns = now


class FileNode:
    __slots__ = (
        "ino", "parent", "name", "size", "trunc_to", "dirty", "durable", "nlink", "pending", "forgotten",
        "mode", "uid", "gid", "atime_ns", "mtime_ns", "ctime_ns",
    )  # fmt: skip

    def __init__(self, ino: int, parent: int, name: str, durable: Durable, mode: int, uid: int, gid: int,
                 now: int) -> None:
        self.ino = ino
        self.parent = parent
        self.name = name
        self.durable = durable
        self.size = durable.size()
        # Persisted bytes at or beyond trunc_to are dead: a shrinking truncate not yet persisted.
        self.trunc_to: int | None = None
        # page index -> full page (a bytearray, or a read-only view of a written buffer until it is
        # modified in part); bytes past `size` are zero
        self.dirty: dict[int, bytearray | memoryview] = {}
        self.nlink = 1
        self.pending = 0  # CREATE changes in the entry log that still need this inode's content
        self.forgotten = False
        self.mode = stat_mod.S_IFREG | (mode & 0o7777)
        self.uid = uid
        self.gid = gid
        self.atime_ns = self.mtime_ns = self.ctime_ns = now


class Inodes:
    """Every live inode of the mount, loaded from the backing directory at start."""

    def __init__(self, backing: str) -> None:
        self.backing = backing
        self.dirs: dict[int, DirNode] = {}
        self.files: dict[int, FileNode] = {}
        self._next_ino = ROOT_INO
        self._load()

    def new_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def node(self, ino: int) -> DirNode | FileNode:
        node = self.dirs.get(ino) or self.files.get(ino)
        if node is None:
            raise NotFound(f"inode {ino}")
        return node

    def dir(self, ino: int) -> DirNode:
        d = self.dirs.get(ino)
        if d is None:
            raise NotADirectory(f"inode {ino}") if ino in self.files else NotFound(f"inode {ino}")
        return d

    def file(self, ino: int) -> FileNode:
        f = self.files.get(ino)
        if f is None:
            raise IsADirectory(f"inode {ino}") if ino in self.dirs else NotFound(f"inode {ino}")
        return f

    def entry(self, d: DirNode, name: str) -> int:
        ino = d.entries.get(name)
        if ino is None:
            raise NotFound(name)
        return ino

    def dir_path(self, d: DirNode) -> str:
        parts: list[str] = []
        while d.ino != ROOT_INO:
            parts.append(d.name)
            d = self.dirs[d.parent]
        return "/".join(reversed(parts))

    def file_path(self, f: FileNode) -> str:
        if not f.nlink:
            return f"{f.name}{UNLINKED}"
        d = self.dir_path(self.dirs[f.parent])
        return f"{d}/{f.name}" if d else f.name

    def backing_path(self, dir_path: str, name: str) -> str:
        return os.path.join(self.backing, dir_path, name)

    def maybe_drop(self, f: FileNode) -> None:
        """Forget a file nobody can reach any more: unlinked, forgotten by the kernel, not pending."""
        if f.nlink == 0 and f.pending == 0 and f.forgotten:
            f.durable.close()
            del self.files[f.ino]

    def stat(self, ino: int) -> NodeStat:
        node = self.node(ino)
        if isinstance(node, DirNode):
            kind, size, nlink = Kind.DIR, _DIR_SIZE, 2
        else:
            kind, size, nlink = Kind.FILE, node.size, node.nlink
        return NodeStat(ino=ino, kind=kind, size=size, mode=node.mode, uid=node.uid, gid=node.gid, nlink=nlink,
                        atime_ns=node.atime_ns, mtime_ns=node.mtime_ns, ctime_ns=node.ctime_ns)

    def sync_owner_mode(self, node: DirNode | FileNode) -> None:
        if isinstance(node, DirNode):
            path = os.path.join(self.backing, self.dir_path(node))
            os.chmod(path, node.mode & 0o7777)
            chown(path, node.uid, node.gid)
        elif isinstance(node.durable, BackingFile):
            os.fchmod(node.durable.fd, node.mode & 0o7777)
            fchown(node.durable.fd, node.uid, node.gid)

    def _load(self) -> None:
        try:
            st = os.stat(self.backing)
        except FileNotFoundError as exc:
            raise NotFound(f"backing directory {self.backing}") from exc
        if not stat_mod.S_ISDIR(st.st_mode):
            raise NotADirectory(self.backing)
        root = DirNode(self.new_ino(), ROOT_INO, "", st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
        self.dirs[root.ino] = root
        self._load_dir(root, self.backing)

    def _load_dir(self, d: DirNode, path: str) -> None:
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            if stat_mod.S_ISDIR(st.st_mode):
                sub = DirNode(self.new_ino(), d.ino, entry.name, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
                self.dirs[sub.ino] = sub
                d.entries[entry.name] = sub.ino
                self._load_dir(sub, entry.path)
            elif stat_mod.S_ISREG(st.st_mode):
                fd = os.open(entry.path, os.O_RDWR | os.O_CLOEXEC)
                f = FileNode(self.new_ino(), d.ino, entry.name, BackingFile(fd), st.st_mode, st.st_uid, st.st_gid,
                             st.st_mtime_ns)
                self.files[f.ino] = f
                d.entries[entry.name] = f.ino
            else:
                raise Unsupported(f"backing entry is neither a file nor a directory: {entry.path}")


def chown(path: str, uid: int, gid: int) -> None:
    # Only root can give files away; elsewhere (unit tests as a user) ownership stays the caller's.
    if os.geteuid() == 0:
        os.chown(path, uid, gid)


def fchown(fd: int, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        os.fchown(fd, uid, gid)
