"""Typed errors of the lossy filesystem, each carrying the errno the FUSE adapter returns."""

from __future__ import annotations

import errno as _errno

from repro.errors import LabError


class LossyFsError(LabError):
    """Base of every error the lossy filesystem raises on purpose."""

    errno: int = _errno.EIO


class InvalidOptions(LossyFsError, ValueError):
    """A construction option is out of range (page size, writeback rate)."""

    errno = _errno.EINVAL


class NotFound(LossyFsError):
    """No such inode or directory entry."""

    errno = _errno.ENOENT


class AlreadyExists(LossyFsError):
    """The directory entry already exists."""

    errno = _errno.EEXIST


class NotEmpty(LossyFsError):
    """rmdir, or a rename over a directory, that still has entries."""

    errno = _errno.ENOTEMPTY


class NotADirectory(LossyFsError):
    """A directory operation on a regular file."""

    errno = _errno.ENOTDIR


class IsADirectory(LossyFsError):
    """A file operation on a directory."""

    errno = _errno.EISDIR


class Unsupported(LossyFsError):
    """Something the model deliberately leaves out (hard links, special files, RENAME_EXCHANGE)."""

    errno = _errno.EOPNOTSUPP


class PowerCut(LossyFsError):
    """The power was cut: the disk is gone, every operation fails with EIO."""

    errno = _errno.EIO
