"""A --fs trial's restart: the kernel recovers the filesystem's image left on the disk, before the probe opens anything.

A machine with ``--fs`` keeps the store's files inside a kernel filesystem's image on its data disk
(repro/machine/services.py: BLOCKFS_IMAGE, on the lossy mount's backing directory). After the machine
went down -- a power cut, or the control's clean stop -- a throwaway *recovery* container mounts the
disk, copies the image to its own tmpfs (the image on the disk stays as the crash left it), mounts the
copy through a loop device (the journal replays: what a restarted Fly machine's kernel does), and copies
the files to RECOVERED_DIR, owned by the workload's user; the restarted machine's probe then opens them
(repro/machine/restart.py). The container runs the lab's own code (repro/explore/recover.py), never the
store's: root with CAP_SYS_ADMIN, CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_FOWNER, the candidate loop devices,
an unconfined AppArmor profile, no network, a read-only root; it carries the run's labels and is removed
when it ends (and by the run's cleanup if the lab dies first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from repro.errors import TrialError
from repro.machine import engine, loops
from repro.machine.labels import RUN_ID, labels
from repro.machine.limits import LOGS
from repro.machine.disk import BLOCKFS_IMAGE_ON_DISK, RECOVERED_DIR

import docker.errors  # noqa: E402

if TYPE_CHECKING:
    from repro.machine.container import ConstrainedHost

ROLE = "fs-recovery"
TIMEOUT_S = 120


@dataclass(frozen=True)
class Recovery:
    """What the kernel made of the disk's filesystem."""

    mounted: bool
    error: str  # the kernel's refusal when not mounted
    files: int

    def describe(self) -> str:
        return f"the kernel recovered {self.files} file(s)" if self.mounted else \
            f"the kernel could not recover the filesystem: {self.error}"


def recover_disk(machine: ConstrainedHost) -> Recovery:
    """Recover the down machine's --fs image into RECOVERED_DIR on its disk (TrialError when the lab cannot)."""
    fs = machine.fs
    if fs is None or machine.disk is None:
        raise TrialError("recovering a filesystem needs a --fs machine with its disk")
    devices = loops.require_devices(str(engine.client().api.base_url), 1)
    argv = ["python3", "-m", "repro.explore.recover", "--image", BLOCKFS_IMAGE_ON_DISK, "--out", RECOVERED_DIR,
            "--devices", ",".join(devices), "--fs", fs.kind.value, "--run", RUN_ID, "--owner", "1000:1000"]
    cli = engine.client()
    try:
        container = cli.containers.create(
            machine.image, argv, entrypoint=[], user="0:0", network_mode="none", read_only=True,
            cap_drop=["ALL"], cap_add=["SYS_ADMIN", "CHOWN", "DAC_OVERRIDE", "FOWNER"],
            security_opt=["no-new-privileges=true", "apparmor=unconfined"],
            devices=[f"{d}:{d}:rwm" for d in devices], tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
            mounts=[machine.disk.mount()], labels=labels(ROLE), log_config=LOGS, mem_limit="1g")
    except docker.errors.DockerException as exc:
        raise TrialError(f"cannot start the filesystem's recovery: {engine._short(exc)}") from None
    try:
        container.start()
        status = container.wait(timeout=TIMEOUT_S)
        out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace").strip().splitlines()
        err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace").strip()[-400:]
    except Exception as exc:  # noqa: BLE001  (requests' ReadTimeout: the recovery hung past its deadline)
        raise TrialError(f"the filesystem's recovery did not end: {type(exc).__name__}: {exc}") from None
    finally:
        engine.discard(container)
    try:
        result = json.loads(out[-1]) if out else {}
    except ValueError:
        result = {}
    if status.get("StatusCode") != 0 or "mounted" not in result:
        raise TrialError(f"the filesystem's recovery failed (exit {status.get('StatusCode')}): "
                         f"{result.get('error') or err or 'no output'}")
    return Recovery(bool(result["mounted"]), str(result.get("error", "")), int(result.get("files", 0)))
