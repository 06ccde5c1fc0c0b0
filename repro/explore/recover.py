"""The kernel recovers block-level crash states: each state's image mounted through a loop device (the journal replays), its files copied out (stdlib only).

Run as root by ``docker exec`` in the explore sandbox (repro/explore/sandbox.py) -- the only
process there with CAP_SYS_ADMIN -- as ``python3 -m repro.explore.recover TRACE_DIR --models ...
--out DIR --devices /dev/loopN,...``. It never imports the store under test: it builds images and
mounts them; the uid-1000 checkers (repro/explore/worker.py) probe the files it leaves in ``DIR``.

For each state: the image durable at the state's last flush is kept in a work file and moved
forward flush by flush (repro/explore/materialize.py), never rebuilt from the start; the state's
image is a copy of only its allocated extents (SEEK_DATA/SEEK_HOLE: a 32 MB ext4 image with a
small store holds about 3 MB) with the state's blocks written over it. It is bound to the first
free loop device of those given with LO_FLAGS_AUTOCLEAR, mounted read-write so the filesystem's own
recovery runs (ext4's jbd2 replay, XFS's log recovery, Btrfs's log tree), its files are copied to
``DIR/<model>-<index>/`` (root's, readable by all), and it is unmounted -- which detaches the
device -- before the next state. Nothing is left mounted between states; the image lives on the
sandbox's tmpfs, never on a FUSE mount, so no I/O of a mount can wait on a process that died.

Records (repro/explore/wire.py): a hello ``{"ready": {...}}``; for each ``{"batch": [[model, index],
...], "slot": n}`` a reply ``{"recovered": [{"mounted": bool, "error": str, "dir": str, "files": int},
...]}``, the states' files in ``DIR/slot-<n mod 2>/``: the checker probes one batch while the next is
recovered into the other slot, which is emptied first; ``{"error": ...}`` and exit 3 when the
recoverer itself fails.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import struct
import sys
import tempfile
import time
import traceback
from typing import Callable, NoReturn, Sequence, TextIO

from repro.errors import LabError
from repro.filesystems import FsKind
from repro.explore.blockspace import BlockModel, BlockSpace, BlockState
from repro.explore.materialize import Materializer

LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_AUTOCLEAR = 4
MAX_COPY_BYTES = 1 << 30
EXIT_FAILED = 3
SLOTS = 2  # batches kept at once: the checker probes one while the next is recovered


class Unrecoverable(LabError):
    """The kernel refused to mount the state's filesystem, or to read a file of it (a checksum or I/O error):
    the state itself is damaged beyond the filesystem's recovery."""


def sparse_copy(src: str, dst: str) -> int:
    """Copy only the allocated extents of ``src`` into a new sparse ``dst`` of the same size; bytes copied."""
    copied = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        fout.truncate(size)
        offset = 0
        while offset < size:
            try:
                offset = os.lseek(fin.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after offset
                    break
                raise
            end = os.lseek(fin.fileno(), offset, os.SEEK_HOLE)
            while offset < end:
                try:
                    n = os.copy_file_range(fin.fileno(), fout.fileno(), end - offset, offset, offset)
                except OSError as exc:  # EXDEV and kin: another filesystem (a volume to a tmpfs), in user space
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    n = os.pwrite(fout.fileno(), os.pread(fin.fileno(), min(end - offset, 1 << 20), offset), offset)
                if n == 0:
                    break
                offset += n
                copied += n
    return copied


def build_image(durable: Materializer, space: BlockSpace, state: BlockState, path: str) -> int:
    """Write the state's image to ``path``: the image durable at its last flush (``durable`` moves forward to
    it), copied extent by extent, with the state's kept blocks written over it; bytes copied."""
    durable.advance(state.point.pos)
    copied = sparse_copy(str(durable.work / str(space.ino)), path)
    units = space.units(state.point)
    fd = os.open(path, os.O_WRONLY)
    try:
        for i in state.kept:
            os.pwrite(fd, units[i].data, units[i].offset)
    finally:
        os.close(fd)
    return copied


def loop_config(backing_fd: int) -> bytes:
    """struct loop_config for LOOP_CONFIGURE: the backing fd, the default block size, and a loop_info64 with
    only LO_FLAGS_AUTOCLEAR set (linux/loop.h: 5 u64, 4 u32, 64+64+32 bytes of names and key, 2 u64)."""
    info = struct.pack("=5Q4I64s64s32s2Q", 0, 0, 0, 0, 0, 0, 0, 0, LO_FLAGS_AUTOCLEAR, b"", b"", b"", 0, 0)
    return struct.pack("=II", backing_fd, 0) + info + bytes(64)


def attach(image: str, devices: Sequence[str]) -> tuple[str, int]:
    """Bind ``image`` to the first free device of ``devices`` with autoclear; (device, its open fd).
    The caller closes the fd once the filesystem is mounted (or not): then the device detaches on umount."""
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        for device in devices:
            fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(fd, LOOP_CONFIGURE, loop_config(backing))
                return device, fd
            except OSError as exc:
                os.close(fd)
                if exc.errno != errno.EBUSY:
                    raise
        raise OSError(errno.EBUSY, f"no free loop device among {', '.join(devices)}")
    finally:
        os.close(backing)  # the loop device holds its own reference to the file


def _unreadable(root: str) -> Callable[[OSError], NoReturn]:
    """What a read error under the mounted filesystem means: the state's damage (Unrecoverable), or -- rights,
    devices, memory, the sandbox's own disk full -- the lab's (the OSError itself)."""
    def fail(exc: OSError) -> NoReturn:
        if exc.errno in _LAB_ERRNOS or exc.errno == errno.ENOSPC:
            raise exc
        where = os.path.relpath(exc.filename, root) if isinstance(exc.filename, str) else "a file"
        raise Unrecoverable(f"reading {where}: {os.strerror(exc.errno or 0)} "
                            f"(errno {errno.errorcode.get(exc.errno or 0, exc.errno)})") from None
    return fail


def copy_tree(root: str, dest: str) -> int:
    """Every regular file and directory under a mounted filesystem (lost+found aside) into ``dest``; files copied."""
    files = total = 0
    for base, dirs, names in os.walk(root, onerror=_unreadable(root)):
        rel = os.path.relpath(base, root)
        if rel == ".":
            dirs[:] = [d for d in dirs if d != "lost+found"]
        target = dest if rel == "." else os.path.join(dest, rel)
        os.makedirs(target, mode=0o755, exist_ok=True)
        for name in names:
            path = os.path.join(base, name)
            try:
                st = os.lstat(path)
            except OSError as exc:
                _unreadable(root)(exc)
            if not stat.S_ISREG(st.st_mode):
                continue
            total += st.st_size
            if total > MAX_COPY_BYTES:
                raise OSError(errno.EFBIG, f"the recovered files exceed {MAX_COPY_BYTES >> 20} MB")
            try:
                shutil.copyfile(path, os.path.join(target, name))
            except OSError as exc:
                _unreadable(root)(exc)
            os.chmod(os.path.join(target, name), 0o644)
            files += 1
    return files


# mount(2) failing with one of these is the lab's trouble (rights, devices, memory), never the state's damage
_LAB_ERRNOS = {errno.EPERM, errno.EACCES, errno.ENODEV, errno.ENOTBLK, errno.ENOENT, errno.EBUSY, errno.ENOMEM,
               errno.EMFILE, errno.ENFILE}
_libc = ctypes.CDLL(None, use_errno=True)


def mount(device: str, mountpoint: str, fs: str) -> None:
    """mount(2) with no flags, and only the options a copy needs (FsKind.recovery_options); Unrecoverable when
    the kernel refuses the filesystem itself (EINVAL, EUCLEAN, EIO...), OSError when the refusal is the lab's
    (see _LAB_ERRNOS)."""
    options = FsKind(fs).recovery_options.encode() or None
    if _libc.mount(device.encode(), mountpoint.encode(), fs.encode(), ctypes.c_ulong(0), options) == 0:
        return
    code = ctypes.get_errno()
    if code in _LAB_ERRNOS:
        raise OSError(code, f"mount {device} ({fs}): {os.strerror(code)}")
    raise Unrecoverable(f"mount: {os.strerror(code)} (errno {errno.errorcode.get(code, code)})")


def umount(mountpoint: str) -> None:
    if _libc.umount2(mountpoint.encode(), 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"umount {mountpoint}: {os.strerror(code)}")


def recover(image: str, devices: Sequence[str], fs: str, mountpoint: str, dest: str) -> int:
    """Mount the image (its recovery runs), copy its files to ``dest``, unmount; files copied, or Unrecoverable."""
    device, fd = attach(image, devices)
    try:
        mount(device, mountpoint, fs)
    finally:
        os.close(fd)  # mounted: the filesystem holds the device; not mounted: autoclear detaches it now
    try:
        return copy_tree(mountpoint, dest)
    finally:
        umount(mountpoint)


def self_check(space: BlockSpace, durable: Materializer, devices: Sequence[str], fs: str, mountpoint: str,
               work: str, run: str) -> None:
    """Recover the recording's final state -- every block written, as after its clean stop -- before any
    other: if even that one does not mount, the trouble is the lab's (rights, options, devices), and no state
    may be called damaged. Raises an OSError saying so."""
    last = space.timeline.points[-1]
    n = len(space.units(last))
    image, dest = os.path.join(work, f"lab-{run}-check.img"), os.path.join(work, "check")
    build_image(durable, space, BlockState(BlockModel.PREFIX, -1, last, tuple(range(n)), n), image)
    os.mkdir(dest)
    try:
        recover(image, devices, fs, mountpoint, dest)
    except Unrecoverable as exc:
        raise OSError(errno.EIO, f"the recording's own final state does not mount here ({exc}): the lab cannot "
                                 "recover this trace's states") from None
    finally:
        os.unlink(image)
        shutil.rmtree(dest, ignore_errors=True)
    durable.advance(0)  # back to the start: the states come in trace order


def recover_one(image: str, out: str, devices: Sequence[str], fs: str, scratch: str, run: str, owner: str,
                report: TextIO) -> int:
    """A --fs trial's crash state: a copy of the disk's image (the image itself stays as the crash left it: it is
    evidence) mounted, its files copied to ``out`` for the restarted machine's probe, owned by ``owner``. Prints
    one JSON line: {"mounted", "error", "files"}; a filesystem the kernel cannot recover is a result (exit 0)."""
    import json

    work = tempfile.mkdtemp(prefix="repro-recover-", dir=scratch)
    try:
        copy, mountpoint = os.path.join(work, f"lab-{run}-restart.img"), os.path.join(work, "mnt")
        os.mkdir(mountpoint)
        sparse_copy(image, copy)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out, mode=0o755)
        try:
            result = {"mounted": True, "error": "", "files": recover(copy, devices, fs, mountpoint, out)}
        except Unrecoverable as exc:
            result = {"mounted": False, "error": str(exc), "files": 0}
        uid, gid = (int(part) for part in owner.split(":"))
        for base, dirs, names in os.walk(out):
            for name in [base, *(os.path.join(base, n) for n in dirs + names)]:
                os.chown(name, uid, gid)
        report.write(json.dumps(result) + "\n")
        return 0
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        report.write(json.dumps({"error": f"the recoverer failed: {type(exc).__name__}: {exc}"[:2000]}) + "\n")
        return EXIT_FAILED
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    channel = os.dup(1)  # the records; anything printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    parser = argparse.ArgumentParser(prog="python3 -m repro.explore.recover")
    parser.add_argument("trace_dir", nargs="?")
    parser.add_argument("--image", default=None, help="one image instead of a trace's states: a --fs trial's disk")
    parser.add_argument("--owner", default="1000:1000", help="with --image: who gets the recovered files")
    parser.add_argument("--models", default="")
    parser.add_argument("--out", required=True)
    parser.add_argument("--devices", required=True)
    parser.add_argument("--fs", required=True)
    parser.add_argument("--scratch", default="/tmp")
    parser.add_argument("--run", default="explore", help="the run's id, in the images' names (a loop device "
                                                         "shows its image's name: repro/machine/loops.py)")
    args = parser.parse_args(argv)

    from repro.explore.wire import ChannelClosed, Reader, Writer

    if args.image:
        return recover_one(args.image, args.out, [d for d in args.devices.split(",") if d], args.fs, args.scratch,
                           args.run, args.owner, os.fdopen(channel, "w", buffering=1))

    out = Writer(os.fdopen(channel, "wb", buffering=0))
    work = tempfile.mkdtemp(prefix="repro-recover-", dir=args.scratch)
    try:
        from repro.explore.timeline import Timeline
        from repro.explore.tracedir import TraceDir

        trace = TraceDir.open(args.trace_dir)
        space = BlockSpace(Timeline(trace.reader()), tuple(BlockModel(m) for m in args.models.split(",")))
        durable = Materializer(space.timeline, work)
        devices = [d for d in args.devices.split(",") if d]
        mountpoint = os.path.join(work, "mnt")
        os.mkdir(mountpoint)
        os.makedirs(args.out, mode=0o755, exist_ok=True)
        _owned_by_root(args.out)
        self_check(space, durable, devices, args.fs, mountpoint, work, args.run)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        out.send({"error": f"the recoverer could not start: {type(exc).__name__}: {exc}"[:2000]})
        shutil.rmtree(work, ignore_errors=True)
        return EXIT_FAILED
    out.send({"ready": {"pid": os.getpid(), "uid": os.getuid(), "devices": devices}})
    requests = Reader(lambda n: os.read(0, n))
    image = os.path.join(work, f"lab-{args.run}-state.img")
    try:
        while True:
            try:
                request = requests.next()
            except ChannelClosed:
                return 0
            slot = os.path.join(args.out, f"slot-{int(request.get('slot', 0)) % SLOTS}")
            shutil.rmtree(slot, ignore_errors=True)  # that slot's batch before last: checked by now
            os.makedirs(slot, mode=0o755)
            replies = []
            started = time.perf_counter()
            for model, index in request["batch"]:
                build_image(durable, space, space.spec(BlockModel(model), int(index)), image)
                dest = os.path.join(slot, f"{model}-{index}")
                os.mkdir(dest, 0o755)
                try:
                    replies.append({"mounted": True, "error": "", "dir": dest,
                                    "files": recover(image, devices, args.fs, mountpoint, dest)})
                except Unrecoverable as exc:
                    replies.append({"mounted": False, "error": str(exc), "dir": dest, "files": 0})
                os.unlink(image)
            out.send({"recovered": replies, "seconds": time.perf_counter() - started})
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        out.send({"error": f"the recoverer failed: {type(exc).__name__}: {exc}"[:2000]})
        return EXIT_FAILED
    finally:
        if os.path.ismount(mountpoint):
            umount(mountpoint)
        shutil.rmtree(work, ignore_errors=True)
        _empty(args.out)


def _owned_by_root(directory: str) -> None:
    """The states' directory must be root's own directory (no link, no one else's): a checker, which runs the store
    under test, must not be able to change a state's files between the kernel's recovery and the probe."""
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise OSError(errno.EPERM, f"{directory} is not a directory only root may write")


def _empty(directory: str) -> None:
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
