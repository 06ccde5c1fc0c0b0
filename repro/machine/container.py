"""The machine (ConstrainedHost): a Fly-like machine as a testcontainers container -- the one way the lab starts one.

A machine is a container from the lab image with the profile's limits (repro/machine/limits.py),
s6-svscan as PID 1, and the data disk: a size-capped tmpfs volume kept alive by a holder
container (repro/machine/disk.py), so that it survives the machine; the holder, which has the
machine's limits, is the restarted machine (repro/machine/restart.py). What the machine needs
from the lab's side (a store's code, a SQLite build) reaches it through the engine, never a
bind mount (repro/machine/inputs.py). This class configures, starts and stops the machine and
offers the primitives faults are made of; it does not judge anything.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from repro.machine import engine  # sets the testcontainers environment before it is imported
from repro.errors import EngineError, LabError, MachineKilledError, ScenarioError
from repro.machine import cpus

from repro.machine.console import Console, LineWait
from repro.machine.disk import BLOCKFS_MOUNT, DATA_DIR, LOSSY_BACKING, LOSSY_MOUNT, RECOVERED_DIR, TRACE_DIR, DataDisk
from repro.machine.inputs import Input, InputKind, SqliteLibrary, archive, code_inputs, library_environment, machine_path
from repro.machine.pool import WIPE_ENV, DiskKey, DiskPool, check_empty
from repro.machine.labels import IMAGE, labels
from repro.machine.limits import WRITABLE, container_settings
from repro.machine import loops
from repro.machine.services import start_workload
from repro.workload.config import WorkloadConfig
from repro.machine import witness
from repro.protocol import Tag
from repro.filesystems import FsSpec
from repro.scenario import OWN_SETTINGS, MachineProfile, StoreSpec, get_profile
from repro.scenario.stores import SYSTEM_SQLITE

import docker.errors  # noqa: E402
from docker.types import Mount  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

DB_PATH = f"{DATA_DIR}/state.db"
BOOT_TIMEOUT_S = 30
# Files the lab writes into a machine travel as an argument of one exec (the root is read-only,
# and the engine's archive upload cannot write into a tmpfs): settings files, a few hundred bytes.
MAX_PUT_BYTES = 64 * 1024


@dataclass(frozen=True)
class StopReport:
    """How the machine went down."""

    signal: str
    exit_code: int | None
    graceful: bool  # exited on its own within the kill timeout
    oom_killed: bool
    seconds: float


def machine_store(store: StoreSpec, sqlite: SqliteLibrary | None) -> StoreSpec:
    """The store as the machine runs it, naming the SQLite build it was given already resolved
    (repro.sqlite.for_store, before any container starts; None: the image's own library)."""
    if sqlite is not None:
        return dataclasses.replace(store, sqlite=sqlite.version, sqlite_assisted=sqlite.assisted)
    if store.sqlite != SYSTEM_SQLITE:
        raise LabError(f"the machine was given SQLite {store.sqlite_label} unresolved: pass the build "
                       "(repro.sqlite.for_store(store)) as sqlite=")
    return store


class ConstrainedHost(DockerContainer):
    """A Fly-like machine. ``stop(signal=...)`` is Fly's stop, not a removal: leaving the
    ``with`` block (or ``remove()``) removes the machine and its disk."""

    def __init__(
        self,
        profile: MachineProfile | str = "fly-256",
        *,
        preset: str | None = None,
        journal_mode: str | None = None,
        synchronous: str | None = None,
        store_path: str | None = None,
        store: StoreSpec | None = None,
        image: str = IMAGE,
        fuse: bool = False,
        record: bool = False,
        role: str = "machine",
        sqlite: SqliteLibrary | None = None,
        pool: DiskPool | None = None,
        fs: FsSpec | None = None,
        loops: tuple[str, ...] = (),
    ) -> None:
        # preset None: the CLI's default -- a foreign store runs its own settings, the lab's store ns506's
        chosen = preset or (OWN_SETTINGS if store_path else StoreSpec().preset)
        self.store = machine_store(store or StoreSpec(preset=chosen, journal_mode=journal_mode,
                                                      synchronous=synchronous, store_path=store_path), sqlite)
        self.sqlite = sqlite
        super().__init__(image)
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.fuse = fuse
        self.record = record  # the lossy filesystem records its trace to TRACE_DIR
        fs = fs or self.profile.filesystem
        if fs is not None and not fuse:
            raise ScenarioError("a machine with --fs needs fuse=True: its filesystem's image lies on the lossy mount")
        self.fs = fs  # the store's directory is this kernel filesystem, on an image on the lossy mount
        self.loops = loops  # the candidate loop devices; chosen when the machine starts if none are given
        self.loop_device = ""  # the one of ``loops`` its filesystem got (repro/machine/services.py: start_blockfs)
        self.role = role
        self.disk: DataDisk | None = None
        self._console: Console | None = None
        self._entrypoint: list[str] | None = None
        self._user: str | None = None
        self.pin: cpus.CpuPin | None = None  # the host CPUs it runs on, once started
        self.pool = pool  # disks kept across a run's trials (repro/machine/pool.py); None: a disk of its own
        self._disk_key: DiskKey | None = None
        self.reused_disk = False  # started on a disk an earlier trial of the run used (emptied at boot)
        self._since: float | None = None  # when start() began: the witness asks the engine from then on
        self._asked: dict[str, list[int]] = {witness.MACHINE: [], witness.HOLDER: []}  # signals the lab sent
        self.waiting_for(LineWait(lambda line: line.tag is Tag.BOOT, "the machine to boot")
                         .with_startup_timeout(BOOT_TIMEOUT_S))

    # -- builders ---------------------------------------------------------------------
    def with_fuse(self) -> "ConstrainedHost":
        """FUSE rights (the device and CAP_SYS_ADMIN) for the power-loss filesystem, nothing more."""
        self.fuse = True
        return self

    def with_entrypoint(self, argv: list[str], user: str | None = None) -> "ConstrainedHost":
        """Run a single program instead of s6 (the restarted machine's probe): no boot line to wait for."""
        self._entrypoint = argv
        self._user = user
        self._wait_strategy = None
        return self

    @property
    def db_path(self) -> str:
        """The database as the workload sees it: behind the lossy mount on a power-loss machine, on the
        kernel filesystem mounted over an image there with ``--fs``."""
        if self.fs is not None:
            return f"{BLOCKFS_MOUNT}/state.db"
        return f"{LOSSY_MOUNT}/state.db" if self.fuse else DB_PATH

    @property
    def disk_db_dir(self) -> str:
        """Where the database files are on the data disk itself (what survives); under --fs, where the kernel's
        recovery of the filesystem's image put them (repro/machine/recovery.py)."""
        if self.fs is not None:
            return RECOVERED_DIR
        return LOSSY_BACKING if self.fuse else DATA_DIR

    @property
    def store_mount(self) -> str:
        """Where the store under test is in the machine ("" when the image's own store runs)."""
        return machine_path(InputKind.STORE) if self.store.store_path else ""

    def inputs(self) -> tuple[Input, ...]:
        """What the machine needs from the lab's side: the store's code, a SQLite build."""
        return code_inputs(self.store.store_path, None if self.sqlite is None else self.sqlite.lib_dir)

    def environment(self) -> dict[str, str]:
        """The store's settings and the SQLite to load, for every process of the machine (and the probe)."""
        env = {**self.store.environment(), **library_environment(self.sqlite)}
        if self.store.store_path:
            env["LAB_STORE_MOUNT"] = self.store_mount
        return env

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = Console(self.get_wrapped_container())
        return self._console

    # -- life cycle ------------------------------------------------------------------------
    def _configure(self) -> None:
        """Called by testcontainers' start(): the container's limits, mounts and environment."""
        mounts = self.disk.mounts() if self.disk else []
        if self.record:
            mounts.append(Mount(target=TRACE_DIR, source=None, type="volume", labels=labels("trace")))
        settings = container_settings(self.profile, role=self.role, mounts=mounts, fuse=self.fuse,
                                      restarted=self._entrypoint is not None,
                                      cpus=self.pin.cpus if self.pin else "", loops=self.loops)
        self.tmpfs.update(WRITABLE)  # testcontainers passes its own tmpfs argument: not in the kwargs
        if self._entrypoint is not None:
            settings["entrypoint"] = self._entrypoint
            if self._user:
                settings["user"] = self._user
        self.with_kwargs(**settings)  # once: with_kwargs replaces earlier kwargs
        # LD_LIBRARY_PATH in the container's env: lab-init execs s6-svscan with it, every service and
        # `docker exec` inherit it, and the restarted machine's probe gets it too.
        env = {"LAB_SERVICES": "", **self.environment(), **({WIPE_ENV: "1"} if self.reused_disk else {})}
        for key, value in env.items():
            self.with_env(key, value)

    def start(self) -> "ConstrainedHost":
        """Make the disk, choose the CPUs, start the disk's holder with the inputs, start the machine,
        wait for its boot line.

        The CPU choice is held (repro/machine/cpus.py) until the holder exists in the engine, so
        that the next machine's choice, in any lab process, sees it; the holder, pinned to the same
        CPUs as the machine, keeps them for the whole trial (the probe runs there)."""
        self._since = time.time()
        payload = archive(self.inputs())  # an unreadable input is bad input: raised before any container
        if self.fs is not None and not self.loops:
            self.loops = loops.require_devices(str(engine.client().api.base_url), 1)
        engine.ensure_image(image=self.image)  # first use builds it (missing or stale), never a registry pull
        self._disk_key = DiskKey.of(self.profile, self.image, payload)
        kept = self.pool.take(self._disk_key) if self.pool is not None and self._entrypoint is None else None
        ready, self._wait_strategy = self._wait_strategy, None
        try:
            if kept is not None:  # its holder runs, holds the CPUs and the inputs; the machine empties the disk
                self.disk, self.pin, self.reused_disk = kept, kept.pin, True
                super().start()
            else:
                self._start_on_new_disk(payload)
            if ready is not None:
                ready.wait_until_ready(self)
            if self.reused_disk:
                check_empty(next((dict(line.payload) for line in self.console.parsed() if line.tag is Tag.BOOT), {}))
        except docker.errors.DockerException as exc:
            self.remove()
            raise EngineError(f"cannot start a {self.profile.name} machine: {engine._short(exc)}") from None
        except BaseException:
            self.remove()
            raise
        finally:
            self._wait_strategy = ready
        return self

    def _start_on_new_disk(self, payload: bytes) -> None:
        """Make a disk pinned to CPUs chosen now, start its holder with the inputs, start the machine.
        When no CPU is free and the run keeps idle disks (which hold theirs), the oldest goes first."""
        while self.disk is None:
            with cpus.claim(self.profile.cpus, engine.client()) as pin:
                if not pin.cpus and self.pool is not None and self.pool.evict_oldest():
                    continue  # choose again, without the CPUs the idle disk held
                self.pin = pin
                self.disk = DataDisk(self.profile, image=self.image).create(pin)
        if self._entrypoint is not None:  # a program that reads the inputs as it starts: upload them first
            self.disk.start(payload)
            super().start()
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="holder") as pool:  # the services read the
            holder = pool.submit(self.disk.start, payload)  # inputs only once the lab starts them: start both
            super().start()
            holder.result()

    def remove(self, keep_disk: bool = False) -> None:
        """Remove the machine, and its disk -- or, with ``keep_disk`` and a pool, hand the disk back for a
        later trial of the run."""
        if self._container is not None:
            try:
                self._container.remove(force=True, v=True)
            except docker.errors.DockerException:
                keep_disk = False  # the machine may still run on it: no later trial gets this disk
            self._container = None
        if self.disk is not None:
            if keep_disk and self.disk.reusable and self.pool is not None and self._disk_key is not None:
                self.pool.give_back(self._disk_key, self.disk)
            else:
                self.disk.remove()
            self.disk = None

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- the workload ---------------------------------------------------------------------
    def start_workload(self, config: WorkloadConfig | None = None, *, lossy_args: str = "", record: bool = False,
                       **settings: object) -> dict[str, object]:
        """Start the store's workload under s6 with ``config``, or one made of ``settings`` (``seed=7,
        rate=20``: the fields of ``WorkloadConfig``), and wait until it reports READY; returns the pragmas
        in force."""
        config = config or WorkloadConfig(**settings)  # type: ignore[arg-type]
        return start_workload(self, config, lossy_args=lossy_args, record=record)

    def wait_for_acks(self, count: int, timeout: float = 60.0) -> int:
        """Block until the workload acknowledged ``count`` writes; returns the count seen."""
        deadline = time.monotonic() + timeout
        while True:
            acks = self.console.acks()
            if acks >= count:
                return acks
            if time.monotonic() > deadline:
                raise self.console.error(f"only {acks} of {count} acknowledged writes after {timeout:.0f} s")
            if self.console.ended:
                raise self.console.error(f"the machine ended after {acks} of {count} acknowledged writes")
            time.sleep(0.02)

    def lines(self) -> list[str]:
        """Everything the machine printed so far."""
        return self.console.lines()

    def output(self, timestamps: bool = False) -> list[str]:
        """Everything the machine printed, as the engine kept it (complete once it is down); ``timestamps``:
        each line after the engine's timestamp (the report's timeline), or none at all if the engine fails."""
        if self._container is not None:
            try:
                logs = self._container.logs(stdout=True, stderr=True, timestamps=timestamps)
                return logs.decode("utf-8", "replace").splitlines()
            except docker.errors.DockerException:
                pass
        return [] if timestamps else self.lines()

    # -- primitives the faults are made of ----------------------------------------------------
    def exec_checked(self, argv: list[str], user: str = "root") -> str:
        result = self.get_wrapped_container().exec_run(argv, user=user, demux=False)
        output = (result.output or b"").decode("utf-8", "replace")
        if result.exit_code != 0:
            raise self.console.error(f"`{' '.join(argv)}` exited {result.exit_code}: {output.strip()[-300:]}")
        return output

    def put_file(self, directory: str, name: str, text: str, then: str = "") -> None:
        """Write a small file (root's, mode 0644) into the machine, atomically (a rename); ``then``: a
        shell command run after it in the same exec (one exec costs ~0.1 s of the engine's time)."""
        if len(text.encode()) > MAX_PUT_BYTES:
            raise LabError(f"{name}: {len(text.encode())} bytes is more than a machine's settings file may hold")
        path = f"{directory.rstrip('/')}/{name}"
        script = f'umask 022 && printf %s "$1" > {shlex.quote(path + ".tmp")} && mv {shlex.quote(path + ".tmp")} ' \
                 f"{shlex.quote(path)}" + (f" && {then}" if then else "")
        self.exec_checked(["sh", "-c", script, "put-file", text])

    def stop(self, signal: str | None = None, timeout: float | None = None) -> StopReport:  # type: ignore[override]
        """Fly's stop: ``signal`` (the profile's kill_signal) to PID 1, then SIGKILL after the kill timeout."""
        sig = signal or self.profile.kill_signal
        if sig not in ("SIGINT", "SIGTERM"):
            raise ScenarioError(f"stop takes SIGINT or SIGTERM, not {sig}")
        grace = self.profile.kill_timeout_s if timeout is None else timeout
        container = self.get_wrapped_container()
        started = time.monotonic()
        self._asked[witness.MACHINE].append(witness.signal_number(sig))
        try:
            container.kill(signal=sig)
        except docker.errors.APIError:
            pass  # already down
        graceful = True
        try:
            container.wait(timeout=grace)
        except Exception:  # requests' ReadTimeout: the grace period is over
            graceful = False
            self._asked[witness.MACHINE].append(witness.signal_number("SIGKILL"))
            try:
                container.kill(signal="SIGKILL")
            except docker.errors.APIError:
                pass
            container.wait(timeout=30)
        return self._down_report(sig, graceful, started)

    def kill(self, signal: str = "SIGKILL") -> StopReport:  # type: ignore[override]
        """The machine dies without warning (a VM hard stop, from the processes' view)."""
        started = time.monotonic()
        container = self.get_wrapped_container()
        self._asked[witness.MACHINE].append(witness.signal_number(signal))
        try:
            container.kill(signal=signal)
        except docker.errors.APIError:
            pass
        container.wait(timeout=30)
        return self._down_report(signal, False, started)

    def is_running(self) -> bool:
        container = self.get_wrapped_container()
        container.reload()
        return container.status == "running"

    def ended_from_outside(self) -> MachineKilledError | None:
        """The error this trial must end with if the engine signalled or removed the machine or its disk's
        holder without the lab asking (docker kill, docker stop, docker rm -f: repro/machine/witness.py);
        None when nothing was, or the engine cannot say."""
        roles = {}
        if self._container is not None:
            roles[str(self._container.id)] = witness.MACHINE
        if self.disk is not None and self.disk.holder_id:
            roles[self.disk.holder_id] = witness.HOLDER
        if self._since is None or not roles:
            return None
        try:
            return witness.ended_from_outside(engine.client(), roles, self._asked, self._since, time.time() + 0.1)
        except Exception:  # the engine cannot say: the trial keeps the error it had  # noqa: BLE001
            return None

    def _down_report(self, sig: str, graceful: bool, started: float) -> StopReport:
        outside = self.ended_from_outside()  # a stop or kill that someone else's signal beat is not the fault's
        if outside is not None:
            raise outside
        state = self.get_wrapped_container().client.api.inspect_container(self.get_container_id())["State"]
        if self._console is not None:
            self._console.join(timeout=5)
        return StopReport(signal=sig, exit_code=state.get("ExitCode"), graceful=graceful,
                          oom_killed=bool(state.get("OOMKilled")), seconds=round(time.monotonic() - started, 3))
