"""The s6 services of a lab machine: settings files, start-up, and the line each one is ready at.

Services are laid out by docker/lab-init and kept down until the lab starts them here
with ``s6-svc -u``: the workload (``session-store``), the power-loss filesystem
(``lossyfs``), the disk filler (``npm-cache``), and the hazards that are processes of
their own (``dashboard``, ``cron``, ``checkpointer``). Settings travel as ``/run/lab/<service>.env`` files
that the service's run script sources.
"""

from __future__ import annotations

import pathlib
import shlex
from dataclasses import replace
from typing import TYPE_CHECKING, Mapping, Protocol

from repro.errors import LabError, ScenarioError
from repro.protocol import EventKind, Line, LossyKind, Tag
from repro.workload.config import WorkloadConfig
from repro.workload.spec import HazardName

if TYPE_CHECKING:  # the CLI imports this module through the faults: no engine client at import time
    from docker.models.containers import Container

    from repro.filesystems import FsSpec
    from repro.machine.console import Console
    from repro.scenario import MachineProfile, StoreSpec

SERVICES_DIR = "/run/s6/services"
SETTINGS_DIR = "/run/lab"
# The cron hazard's writer: its ledger indices start here (the gateway's stay far below), and
# it does what a cron job does to sessions.
CRON_OP_OFFSET = 1_000_000_000
CRON_MIX = "append_message=50,update_token_counts=30,create_session=10,end_session=10"
START_TIMEOUT_S = 30.0
START_RETRY_S = 0.02
# A recording machine (repro explore): the lossyfs trace goes to the machine's trace volume
# (disk.TRACE_DIR, fetched with ``fetch_trace`` once the machine is down), and the workload
# marks it through the daemon's socket.
TRACE_FILE = "trace.jsonl"
MARK_SOCKET = f"{SETTINGS_DIR}/marks.sock"


class Machine(Protocol):
    """What starting services needs of a machine (repro.machine.container.ConstrainedHost is one)."""

    @property
    def fuse(self) -> bool: ...

    @property
    def record(self) -> bool: ...

    @property
    def store(self) -> StoreSpec: ...

    @property
    def console(self) -> Console: ...

    @property
    def db_path(self) -> str: ...

    @property
    def store_mount(self) -> str: ...

    @property
    def fs(self) -> FsSpec | None: ...

    @property
    def profile(self) -> MachineProfile: ...

    loops: tuple[str, ...]
    loop_device: str

    def exec_checked(self, argv: list[str], user: str = "root") -> str: ...

    def put_file(self, directory: str, name: str, text: str, then: str = "") -> None: ...

    def get_wrapped_container(self) -> Container: ...


def env_text(settings: Mapping[str, str]) -> str:
    """A settings file the run scripts source with ``set -a``."""
    return "".join(f"{key}={_quote(value)}\n" for key, value in settings.items())


def start(machine: Machine, service: str, settings: Mapping[str, str], timeout: float = 10.0) -> None:
    """Write the service's settings and start it, in one exec: ``s6-svc -u`` is retried in the machine
    until the service's supervisor listens (s6-svscan spawns the supervisors just after boot)."""
    path = shlex.quote(f"{SERVICES_DIR}/{service}")
    tries = max(1, int(timeout / START_RETRY_S))
    up = (f"i=0; until s6-svc -u {path} 2>/dev/null; do i=$((i+1)); "
          f"if [ $i -ge {tries} ]; then s6-svc -u {path}; exit 1; fi; sleep {START_RETRY_S}; done")
    try:
        machine.put_file(SETTINGS_DIR, f"{service}.env", env_text(settings), then=up)
    except LabError as exc:
        raise machine.console.error(f"s6 did not accept `s6-svc -u {SERVICES_DIR}/{service}` within {timeout:.0f} s: "
                                    f"{exc}") from None


def start_workload(machine: Machine, config: WorkloadConfig, *, lossy_args: str = "",
                   record: bool = False) -> dict[str, object]:
    """Start the store's workload (after the lossy filesystem on a power-loss machine) and the
    hazard processes; returns the workload's READY facts (the pragmas in force). The machine fills in
    where the database and the store are; every other setting is the config's, under its own name."""
    if record and not (machine.fuse and machine.record):
        raise ScenarioError("recording a trace needs a machine made with fuse=True and record=True")
    if machine.fuse:
        start_lossyfs(machine, config.seed, lossy_args, record=record)
    if machine.fs is not None:
        machine.loop_device = start_blockfs(machine)
    config = replace(config, db_path=machine.db_path, store_mount=machine.store_mount,
                     mark_socket=MARK_SOCKET if record else "")
    start(machine, "session-store", {**config.to_env(), **machine.store.environment()})
    line = machine.console.wait_for(_ready_or_failed, START_TIMEOUT_S, "the workload to be ready")
    if line.tag is not Tag.READY:
        raise machine.console.error(f"the workload did not start: {line.kind}: {line.payload.get('error')}")
    dashboard_ms, cron_ms = config.hazard_every(HazardName.DASHBOARD), config.hazard_every(HazardName.CRON)
    checkpointer_ms = config.hazard_every(HazardName.CHECKPOINTER)
    if dashboard_ms:  # the database exists now; the dashboard opens it as the workload starts
        start(machine, "dashboard", {"LAB_DASHBOARD_EVERY_MS": str(dashboard_ms)})
        machine.console.wait_for(lambda l: l.is_event(EventKind.DASHBOARD_STARTED), START_TIMEOUT_S,
                                 "the dashboard to start")
    if cron_ms:
        cron = WorkloadConfig(role="cron", seed=config.seed + 1, op_offset=CRON_OP_OFFSET,
                              status_path="/run/lab/status-cron", rate=1000 / cron_ms, mix=CRON_MIX,
                              db_path=machine.db_path, store_mount=machine.store_mount)
        start(machine, "cron", cron.to_env())
        machine.console.wait_for(lambda l: l.is_event(EventKind.WRITER_READY), START_TIMEOUT_S,
                                 "the cron writer to start")
    if checkpointer_ms:
        start(machine, "checkpointer", {"LAB_CHECKPOINT_EVERY_MS": str(checkpointer_ms)})
        machine.console.wait_for(lambda l: l.is_event(EventKind.CHECKPOINTER_STARTED), START_TIMEOUT_S,
                                 "the checkpointer to start")
    return dict(line.payload)


def start_lossyfs(machine: Machine, seed: int, args: str = "", *, record: bool = False) -> None:
    """The power-loss filesystem, mounted over the disk before the workload opens anything;
    ``record``: it also records its trace to TRACE_DIR and takes marks on MARK_SOCKET."""
    from repro.machine.disk import LOSSY_BACKING, LOSSY_MOUNT, TRACE_DIR

    if record:
        args = f"{args} --record {TRACE_DIR}/{TRACE_FILE} --mark-socket {MARK_SOCKET}".strip()
    start(machine, "lossyfs", {"LAB_SEED": str(seed), "LAB_LOSSY_BACKING": LOSSY_BACKING,
                               "LAB_LOSSY_MOUNT": LOSSY_MOUNT, "LAB_LOSSY_ARGS": args})
    machine.console.wait_for(lambda l: l.is_lossy(LossyKind.READY), START_TIMEOUT_S, "the lossy filesystem")


def start_blockfs(machine: Machine) -> str:
    """Make and mount the ``--fs`` filesystem over an image on the lossy mount, in a mount namespace of its
    own held by the ``blockfs`` service (docker/lab-blockfs), before the workload opens anything; the
    store's services join that namespace. Returns the loop device it got."""
    from repro.machine.disk import BLOCKFS_IMAGE, BLOCKFS_MOUNT

    fs = machine.fs
    assert fs is not None
    start(machine, "blockfs", {
        "LAB_BLOCKFS_IMAGE": BLOCKFS_IMAGE, "LAB_BLOCKFS_SIZE": str(machine.profile.disk),
        "LAB_BLOCKFS_MOUNT": BLOCKFS_MOUNT, "LAB_BLOCKFS_OWNER": "hermes:hermes",
        "LAB_BLOCKFS_MKFS": " ".join(fs.kind.mkfs), "LAB_BLOCKFS_OPTIONS": ",".join(fs.mount_options),
        "LAB_BLOCKFS_DEVICES": " ".join(machine.loops)})
    try:
        out = machine.exec_checked(["lab-blockfs", "wait", str(int(START_TIMEOUT_S))])
    except LabError as exc:
        raise machine.console.error(f"the {fs.label} filesystem was not mounted: {exc}") from None
    device = next((line.split()[-1] for line in out.splitlines() if line.startswith("LAB BLOCKFS ")), "")
    if not device:
        raise machine.console.error(f"lab-blockfs mounted no filesystem: {out.strip()[-300:]}")
    return device


def stop_blockfs(machine: Machine) -> None:
    """Unmount the ``--fs`` filesystem (its loop device detaches): its last writes and flush reach lossyfs
    before the machine's stop ends the lossy filesystem."""
    from repro.machine.disk import BLOCKFS_MOUNT

    machine.exec_checked(["lab-blockfs", "down", BLOCKFS_MOUNT])


def fetch_trace(machine: Machine, dest: pathlib.Path) -> list[str]:
    """Copy the recorded trace (trace.jsonl and its blobs) out of the machine into ``dest``; the
    machine may be down, not removed. Returns the names copied."""
    from repro.machine.disk import TRACE_DIR, copy_out

    return copy_out(machine.get_wrapped_container(), TRACE_DIR, dest)


def _ready_or_failed(line: Line) -> bool:
    return (line.tag is Tag.READY or line.is_event(EventKind.STORE_OPEN_FAILED)
            or line.is_event(EventKind.CONFIG_ERROR))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
