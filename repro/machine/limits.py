"""What a Fly-like machine may use: memory without swap, a pinned CPU, pids, capabilities, no network, read-only root, logs.

One function turns a profile into the engine's container settings, so every machine the
lab starts -- the trial machine, and the disk holder in which the restarted machine's probe
runs (repro/machine/disk.py) -- is limited in the same place.
"""

from __future__ import annotations

import os
from typing import Iterable

from repro.machine import engine  # first: it sets the testcontainers environment

import docker.errors  # noqa: E402
from docker.client import DockerClient  # noqa: E402
from docker.types import LogConfig, Mount  # noqa: E402

from repro.errors import EngineError  # noqa: E402
from repro.machine.labels import IMAGE, labels  # noqa: E402
from repro.scenario import MachineProfile  # noqa: E402

# The machine's log is where the ledger lives (the lab reads it back from the engine), so the cap
# must keep a whole trial's. Measured on this lab's machines, a flat-out fly-256 workload for the
# fault agent's full 60 s (the longest a trigger is waited for) wrote 6.3 MB of json-file log with
# the default 200 B-20 KB messages (13.9k acks), and 45 MB with 1-10 byte messages (112k acks, the
# worst case). Rotation keeps at least (files - 1) x size = 50 MB and at most 75 MB on the host's
# disk. A store that refuses every write no longer floods it: the workload backs off to one call a
# second once the store is unusable (repro/workload/refusals.py; a corrupt hunt trial went from 208 MB
# to 118 KB). A log that outgrew the cap anyway lost its first lines: the trial is an `error`, never a verdict.
LOG_MAX_SIZE = "25m"
LOG_MAX_FILES = 3
LOGS = LogConfig(type=LogConfig.types.JSON, config={"max-size": LOG_MAX_SIZE, "max-file": str(LOG_MAX_FILES)})

# Writable places of a machine's otherwise read-only root (tmpfs, given to testcontainers'
# ``tmpfs``): /run (lab-init lays out s6's scan directory there, whose run scripts s6 executes;
# the services' settings and the status board) and /tmp (SQLite's and Python's temporary files).
# Everything else a trial writes is on the data disk.
WRITABLE = {"/run": "rw,exec,nosuid,nodev,size=16m,mode=755", "/tmp": "rw,nosuid,nodev,size=64m,mode=1777"}


def read_only_root() -> dict[str, object]:
    """Settings for a read-only root and bounded json-file logs (the tmpfs mounts are WRITABLE)."""
    return dict(read_only=True, log_config=LOGS)


# What s6-setuidgid, lab-init and the fault agent need; everything else is dropped.
BASE_CAPS = ("CHOWN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER")

def container_settings(profile: MachineProfile, *, role: str, mounts: list[Mount], fuse: bool,
                       restarted: bool, cpus: str = "", loops: tuple[str, ...] = ()) -> dict[str, object]:
    """docker-py ``containers.create`` keyword arguments for a machine of this profile, pinned to
    ``cpus`` (repro/machine/cpus.py; "" for none).

    The restarted machine (the disk holder) runs only the probe, as uid 1000: it needs no capability at all.
    Only a power-loss machine gets the FUSE device, CAP_SYS_ADMIN and an unconfined AppArmor profile;
    with ``--fs`` also ``loops``, the candidate loop devices (repro/machine/loops.py), for root's
    lab-blockfs alone (the device nodes are root's: the workload's uid 1000 cannot open them).
    """
    # SYS_CHROOT with loops: joining the --fs filesystem's mount namespace (nsenter --mount) needs it
    caps = [] if restarted else [*BASE_CAPS, *(["SYS_ADMIN"] if fuse else []), *(["SYS_CHROOT"] if loops else [])]
    security = ["no-new-privileges=true", *(["apparmor=unconfined"] if fuse else [])]
    settings: dict[str, object] = dict(
        mem_limit=profile.memory, memswap_limit=profile.memory_swap, nano_cpus=int(profile.cpus * 1e9),
        pids_limit=profile.pids_limit, network_mode="bridge" if profile.network else "none",
        labels=labels(role, cpus=cpus), mounts=mounts, stop_signal=profile.kill_signal,
        cap_drop=["ALL"], cap_add=caps, security_opt=security, **read_only_root(),
    )
    if cpus:
        settings["cpuset_cpus"] = cpus
    if fuse:
        settings["devices"] = ["/dev/fuse:/dev/fuse:rwm", *(f"{d}:{d}:rwm" for d in loops)]
    return settings


def holder_settings(profile: MachineProfile, *, mounts: list[Mount], cpus: str = "") -> dict[str, object]:
    """The disk holder's settings: the restarted machine's limits (the profile's memory, CPU and
    pids, no capability, no network, read-only root), uid 1000, and nothing running but a sleep
    until the probe is executed in it. ``tmpfs``: /tmp only (SQLite's temporary files)."""
    settings = container_settings(profile, role="disk-holder", mounts=mounts, fuse=False, restarted=True, cpus=cpus)
    settings.update(entrypoint=["sleep", "infinity"], user="1000:1000", tmpfs={"/tmp": WRITABLE["/tmp"]})
    return settings


# Devices: whether a machine may have one is the engine's host's answer, asked with a machine's own limits.
_devices: dict[tuple[str, str], bool] = {}


def has_device(path: str, cli: DockerClient | None = None, image: str = IMAGE) -> bool:
    """Whether the engine's host has the device ``path`` (``/dev/fuse`` for power loss): a remote
    engine's devices are not this host's, so a throwaway container with the device asks the engine
    itself (once per process and engine). Without the lab image yet, this host's own answer."""
    cli = cli or engine.client()
    key = (str(cli.api.base_url), path)
    if key in _devices:
        return _devices[key]
    if not engine.image_present(cli, image):
        return os.path.exists(path)
    found = False
    try:
        container = cli.containers.create(image, entrypoint=["true"], devices=[f"{path}:{path}:rwm"],
                                          network_mode="none", cap_drop=["ALL"], labels=labels("device-check"),
                                          **read_only_root())
    except docker.errors.DockerException as exc:
        raise EngineError(f"cannot ask the engine whether it has {path}: {engine._short(exc)}") from None
    try:
        container.start()  # the engine gathers the device when it starts the container
        found = True
    except docker.errors.APIError as exc:
        if "device" not in engine._short(exc).lower():  # any other refusal is the engine failing, not a missing device
            raise EngineError(f"cannot ask the engine whether it has {path}: {engine._short(exc)}") from None
        found = False  # "error gathering device information while adding custom device ...: no such file"
    finally:
        try:
            container.remove(force=True)
        except docker.errors.DockerException:
            pass
    _devices[key] = found
    return found


def image_has_programs(image: str, programs: Iterable[str], cli: DockerClient | None = None) -> list[str]:
    """Which of ``programs`` the image lacks (an empty list: it has them all), asked in a throwaway container
    with no network and no capability -- e.g. a user's --image without xfsprogs, before any machine."""
    names = list(programs)
    cli = cli or engine.client()
    script = 'for p in "$@"; do command -v "$p" >/dev/null 2>&1 || echo "$p"; done'
    try:
        out = cli.containers.run(image, ["sh", "-c", script, "check", *names], entrypoint=[], remove=True,
                                 network_mode="none", cap_drop=["ALL"], labels=labels("program-check"),
                                 **read_only_root())
    except docker.errors.DockerException as exc:
        raise EngineError(f"cannot ask the image {image} for {', '.join(names)}: {engine._short(exc)}") from None
    return (out or b"").decode("utf-8", "replace").split()
