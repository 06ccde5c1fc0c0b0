"""Loop devices for ``--fs``: which of the engine host's loop devices a machine or the explore sandbox may be given.

Loop devices belong to the host's kernel, not to a container: a container can only be handed
device nodes that exist, and ``losetup -f`` inside one may pick a device it was not given. So the
lab chooses: the devices that exist and are not bound now (``/sys/block/loopN/loop`` appears only
while a device is bound), a few of them, handed to the container as candidates. The container
binds the first one that is still free -- binding is atomic in the kernel (EBUSY when another
run got there first) -- always with LO_FLAGS_AUTOCLEAR, so a device detaches when its filesystem
is unmounted or its last user closes it, including when the container dies. Only a local engine
has this host's loop devices: with a remote one ``--fs`` is refused as bad input.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import re

from repro.errors import ScenarioError

SYS_BLOCK = pathlib.Path("/sys/block")
DEV = pathlib.Path("/dev")
LOOP_CLR_FD = 0x4C01
CANDIDATES = 4  # devices handed to one container: enough to get past a few that other runs bound meanwhile
_LOOP = re.compile(r"loop(\d+)")


def free_devices(limit: int = CANDIDATES, sys_block: pathlib.Path = SYS_BLOCK, dev: pathlib.Path = DEV) -> tuple[str, ...]:
    """Up to ``limit`` loop device paths that exist and are unbound now, lowest number first."""
    found: list[tuple[int, str]] = []
    try:
        entries = list(sys_block.iterdir())
    except OSError:
        return ()
    for entry in entries:
        match = _LOOP.fullmatch(entry.name)
        if match is None or (entry / "loop").exists():
            continue
        node = dev / entry.name
        if node.exists():
            found.append((int(match.group(1)), str(node)))
    return tuple(path for _, path in sorted(found)[:limit])


def is_local(base_url: str) -> bool:
    """Whether docker-py's base URL is a Unix socket on this host (docker-py names it http+docker://localhost;
    an ssh:// engine is http+docker://ssh)."""
    return base_url.startswith(("unix://", "http+unix://")) or base_url in ("http+docker://localhost",
                                                                              "http+docker://localunixsocket")


def require_devices(base_url: str, count: int = 1) -> tuple[str, ...]:
    """The candidate devices for a container that needs ``count`` at once, or ScenarioError saying why none."""
    if not is_local(base_url):
        raise ScenarioError(f"--fs needs the engine on this machine (loop devices are the engine host's kernel's); "
                            f"the engine is {base_url}")
    if not os.path.exists("/dev/loop-control") and not any(DEV.glob("loop[0-9]*")):
        raise ScenarioError("--fs needs loop devices and this machine has none (/dev/loop*): load the loop "
                            "module (modprobe loop)")
    devices = free_devices(max(CANDIDATES, count + 2))
    if len(devices) < count:
        raise ScenarioError(f"--fs needs {count} free loop device(s) and this machine has {len(devices)} free: "
                            "detach stale ones (`losetup -a`, `repro clean`) or create more "
                            "(`losetup -f` as root, or the loop module's max_loop)")
    return devices


IMAGE_PREFIX = "lab-"  # the lab's images are lab-<run id>-<what>.img (their loop devices show the name)


def image_name(run_id: str, what: str) -> str:
    """The file name of an image the lab binds to a loop device: the run that owns it is in the name, since a
    loop device carries no label (``/sys/block/loopN/loop/backing_file`` shows it)."""
    return f"{IMAGE_PREFIX}{run_id}-{what}.img"


def bound_to(run_id: str, sys_block: pathlib.Path = SYS_BLOCK, dev: pathlib.Path = DEV) -> list[str]:
    """The loop devices bound now to an image of the run ``run_id``."""
    found = []
    for entry in sorted(sys_block.glob("loop*")):
        try:
            backing = (entry / "loop" / "backing_file").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        if os.path.basename(backing.removesuffix(" (deleted)")).startswith(f"{IMAGE_PREFIX}{run_id}-"):
            found.append(str(dev / entry.name))
    return found


def detach_run(run_id: str) -> int:
    """Detach what a run left bound (LOOP_CLR_FD; a device still mounted somewhere only gets autoclear, and
    goes when it is unmounted). By construction nothing should be left -- autoclear, and filesystems mounted
    only in namespaces that die with their containers -- so this is the reaper's last sweep. Returns how many
    it detached; 0 when this process may not (not root, or no loop devices)."""
    detached = 0
    for device in bound_to(run_id):
        try:
            fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.ioctl(fd, LOOP_CLR_FD)
            detached += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return detached


def kernel_has(fs: str, filesystems: pathlib.Path = pathlib.Path("/proc/filesystems")) -> bool:
    """Whether the running kernel knows the filesystem (built in or loaded)."""
    try:
        text = filesystems.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return any(line.split()[-1] == fs for line in text.splitlines() if line.split())
