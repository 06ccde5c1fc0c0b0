"""The constrained host: a Fly-like machine as a testcontainers container -- the one way the lab starts one.

A machine is a container from the lab image with the profile's memory cap (no swap),
one CPU, a pids limit, no network, dropped capabilities, s6-svscan as PID 1, and the
data disk: a size-capped tmpfs volume kept alive by a small holder container, so that
it survives the machine and the "restarted machine" of verify() sees the same files.
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
import tarfile
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from repro import engine  # sets the testcontainers environment before it is imported
from repro.errors import EngineError, ScenarioError, TrialError
from repro.labels import IMAGE, labels
from repro.ledger import Ledger, parse_lines
from repro.disk import DATA_DIR, SNAPSHOT_DIR, DataDisk
from repro.scenario import DEFAULT_PROFILE, MachineProfile, StoreSpec, get_profile

if TYPE_CHECKING:
    from repro.oracle import Judgement
    from repro.probe import ProbeFacts

import docker.errors  # noqa: E402
from docker.types import Mount  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

DB_PATH = f"{DATA_DIR}/state.db"
LOSSY_MOUNT = f"{DATA_DIR}/lossy"
LOSSY_BACKING = f"{DATA_DIR}/backing"
STORE_MOUNT = "/opt/store"
# What s6-setuidgid, lab-init and the agent need; everything else is dropped.
BASE_CAPS = ("CHOWN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER")
# The cron hazard's writer: its ledger indices start here (the gateway's stay far below), and
# it does what a cron job does to sessions.
CRON_OP_OFFSET = 1_000_000_000
CRON_MIX = "append=50,tokens=30,create=10,end=10"
# The files of the database, as a crash leaves them.
DB_FILES = ("state.db", "state.db-wal", "state.db-shm", "state.db-journal")


@dataclass(frozen=True)
class StopReport:
    """How the machine went down."""

    signal: str
    exit_code: int | None
    graceful: bool  # exited on its own within the kill timeout
    oom_killed: bool
    seconds: float


@dataclass(frozen=True)
class AgentReport:
    """What the in-machine fault agent saw at the instant it fired."""

    fired: bool
    acks: int
    in_write: bool
    detail: dict[str, object]


class ConstrainedHost(DockerContainer):
    """A Fly-like machine. ``stop(signal=...)`` is Fly's stop, not a removal: leaving the
    ``with`` block (or ``remove()``) removes the machine and, if it made it, the disk."""

    def __init__(
        self,
        profile: MachineProfile | str = DEFAULT_PROFILE,
        *,
        preset: str = "ns506",
        journal_mode: str | None = None,
        synchronous: str | None = None,
        store_path: str | None = None,
        store: StoreSpec | None = None,
        image: str = IMAGE,
        disk: DataDisk | None = None,
        fuse: bool = False,
        role: str = "machine",
    ) -> None:
        super().__init__(image)
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.store = store or StoreSpec(preset=preset, journal_mode=journal_mode,
                                        synchronous=synchronous, store_path=store_path)
        self.fuse = fuse
        self.role = role
        self.disk = disk
        self._owns_disk = disk is None
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._follower: threading.Thread | None = None
        self._services: tuple[str, ...] = ()
        self._entrypoint: list[str] | None = None
        self._user: str | None = None
        self.faults_seen: list[str] = []
        self.raw_open_every = 0  # set by start_workload: the verdict must know the locks were dropped
        self._snapshot: list[str] | None = None  # the crash-state files verify kept in the holder
        self.lossy_args = ""
        self.db_path = f"{LOSSY_MOUNT}/state.db" if fuse else DB_PATH

    # -- builders ---------------------------------------------------------------------
    def with_fuse(self) -> "ConstrainedHost":
        """FUSE rights (the device and CAP_SYS_ADMIN) for the power-loss filesystem, nothing more."""
        self.fuse = True
        self.db_path = f"{LOSSY_MOUNT}/state.db"
        return self

    def with_services(self, *names: str) -> "ConstrainedHost":
        """s6 services to start at boot (default: none; start_workload starts the store)."""
        self._services = names
        return self

    def with_entrypoint(self, argv: list[str], user: str | None = None) -> "ConstrainedHost":
        """Run a single program instead of s6 (the verifier's restarted machine)."""
        self._entrypoint = argv
        self._user = user
        return self

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> "ConstrainedHost":
        if self.disk is None:
            self.disk = DataDisk(self.profile.disk, image=self.image).create()
        try:
            self._configure_machine()
            super().start()
        except docker.errors.DockerException as exc:
            self.remove()
            raise EngineError(f"cannot start a {self.profile.name} machine: {engine._short(exc)}") from None
        except BaseException:
            self.remove()
            raise
        self._follower = threading.Thread(target=self._follow, daemon=True, name="host-logs")
        self._follower.start()
        if self._entrypoint is None:
            self.wait_for_line(lambda l: l.startswith("LAB BOOT"), 30, "the machine to boot")
        return self

    def svc_up(self, service: str, timeout: float = 10.0) -> None:
        """Start an s6 service once its supervisor listens (s6-svscan spawns them just after boot)."""
        path = f"/run/s6/services/{service}"
        deadline = time.monotonic() + timeout
        while True:
            result = self.get_wrapped_container().exec_run(["s6-svc", "-u", path], user="root")
            if result.exit_code == 0:
                return
            if time.monotonic() > deadline:
                raise self._trial_error(f"s6 did not accept `s6-svc -u {path}`: {result.output.decode().strip()}")
            time.sleep(0.02)

    def _configure_machine(self) -> None:
        p = self.profile
        # The restarted machine runs only the probe, as uid 1000: it needs no capability at all.
        caps = [] if self._entrypoint is not None else list(BASE_CAPS) + (["SYS_ADMIN"] if self.fuse else [])
        mounts = [self.disk.mount()] if self.disk else []
        if self.store.store_path:
            mounts.append(Mount(target=STORE_MOUNT, source=str(pathlib.Path(self.store.store_path).resolve()),
                                type="bind", read_only=True))
        kwargs: dict[str, object] = dict(
            mem_limit=p.memory, memswap_limit=p.memory_swap, nano_cpus=int(p.cpus * 1e9),
            cpuset_cpus=_next_cpus(p.cpus),
            pids_limit=p.pids_limit, network_mode="none" if not p.network else "bridge",
            labels=labels(self.role), mounts=mounts, stop_signal=p.kill_signal,
            cap_drop=["ALL"], cap_add=caps, security_opt=["no-new-privileges=true"],
        )
        if self.fuse:
            kwargs["devices"] = ["/dev/fuse:/dev/fuse:rwm"]
            kwargs["security_opt"] = ["no-new-privileges=true", "apparmor=unconfined"]
        if self._entrypoint is not None:
            kwargs["entrypoint"] = self._entrypoint
            if self._user:
                kwargs["user"] = self._user
        self.with_kwargs(**kwargs)  # once: with_kwargs replaces earlier kwargs
        env = {"LAB_SERVICES": " ".join(self._services), **self.store.environment()}
        if self.store.store_path:
            env["LAB_STORE_PATH"] = STORE_MOUNT
        for key, value in env.items():
            self.with_env(key, value)

    def _follow(self) -> None:
        """Collect the machine's output lines as they come (the live ledger)."""
        buffer = b""
        try:
            for chunk in self.get_wrapped_container().logs(stream=True, follow=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if lines:
                    with self._cond:
                        self._lines.extend(line.decode("utf-8", "replace") for line in lines)
                        self._cond.notify_all()
        except docker.errors.DockerException:
            pass
        with self._cond:
            if buffer:
                self._lines.append(buffer.decode("utf-8", "replace"))
            self._cond.notify_all()

    def remove(self) -> None:
        """Remove the machine, and its disk if this host made it."""
        if self._container is not None:
            try:
                self._container.remove(force=True, v=True)
            except docker.errors.DockerException:
                pass
            self._container = None
        if self._owns_disk and self.disk is not None:
            self.disk.remove()
            self.disk = None

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- observing ---------------------------------------------------------------------------
    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self._lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._trial_error(f"timed out after {timeout:.0f} s waiting for {what}")
                if self._follower is not None and not self._follower.is_alive() and seen == len(self._lines):
                    raise self._trial_error(f"the machine ended before {what}")
                self._cond.wait(min(left, 0.2))

    def _trial_error(self, message: str) -> TrialError:
        error = TrialError(message)
        error.add_note("machine output (last 30 lines):\n" + "\n".join(self.lines()[-30:]))
        return error

    def ledger(self) -> Ledger:
        """The workload's ledger as the engine kept it (complete once the machine is down)."""
        if self._container is not None:
            try:
                raw = self._container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
                return parse_lines(raw.splitlines())
            except docker.errors.DockerException:
                pass
        return parse_lines(self.lines())

    def acks(self) -> int:
        return sum(1 for line in self.lines() if line.startswith("LEDGER ") and '"t":"ok"' in line)

    def exec_checked(self, argv: list[str], user: str = "root") -> str:
        result = self.get_wrapped_container().exec_run(argv, user=user, demux=False)
        output = (result.output or b"").decode("utf-8", "replace")
        if result.exit_code != 0:
            raise self._trial_error(f"`{' '.join(argv)}` exited {result.exit_code}: {output.strip()[-300:]}")
        return output

    def put_file(self, directory: str, name: str, text: str) -> None:
        data = text.encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        self.get_wrapped_container().put_archive(directory, buf.getvalue())

    # -- the workload ---------------------------------------------------------------------------
    def start_workload(self, seed: int = 0, *, ops: int = 0, rate: float = 0.0, linger_ms: int = 0,
                       lossy_args: str = "", env: dict[str, str] | None = None, hold: bool = False,
                       raw_open_every: int = 0, dashboard_ms: int = 0, cron_ms: int = 0,
                       timeout: float = 30.0) -> dict[str, object]:
        """Start the store's workload under s6 and wait until it reports READY; returns its facts.
        On a FUSE machine the power-loss filesystem starts first (``lossy_args``: --lazy-dirs, --torn-writes).
        ``hold``: the workload writes nothing until the first fault agent is watching, so that a
        trigger of N acks lands at N rather than wherever the workload got during the agent's start.
        Hazards (the application misbehaving, all run long): ``raw_open_every`` N writes the
        workload open()s and close()s its live database file (dropping its POSIX locks);
        ``dashboard_ms``: a second process opens the store, reads and closes it every so often;
        ``cron_ms``: a second writer process (a copy of the workload, its own sessions and ledger
        indices above CRON_OP_OFFSET) writes one operation every so often."""
        self.raw_open_every = raw_open_every
        if self.fuse:
            self.start_lossyfs(seed, lossy_args)
        settings = {"LAB_SEED": str(seed), "LAB_DB_PATH": self.db_path, "LAB_OPS": str(ops),
                    "LAB_RATE": str(rate), "LAB_LINGER_MS": str(linger_ms), "LAB_HOLD": "1" if hold else "0",
                    "LAB_RAW_OPEN_EVERY": str(raw_open_every),
                    **self.store.environment(),
                    **(env or {})}
        if self.store.store_path:
            settings["LAB_STORE_PATH"] = STORE_MOUNT
        self.put_file("/run/lab", "workload.env", "".join(f"{k}={_quote(v)}\n" for k, v in settings.items()))
        self.svc_up("session-store")
        line = self.wait_for_line(lambda l: l.startswith(("READY ", "EVENT {\"kind\": \"store-open-failed\"",
                                                        "EVENT {\"kind\": \"config-error\"")),
                                  timeout, "the workload to be ready")
        if not line.startswith("READY "):
            raise self._trial_error(f"the workload did not start: {line}")
        if dashboard_ms:  # the database exists now; the dashboard opens it as the workload starts
            self.put_file("/run/lab", "dashboard.env", f"LAB_DASHBOARD_EVERY_MS={dashboard_ms}\n")
            self.svc_up("dashboard")
            self.wait_for_line(lambda l: l.startswith('EVENT {"kind": "dashboard-started"'), timeout,
                               "the dashboard to start")
        if cron_ms:
            cron = {"LAB_ROLE": "cron", "LAB_SEED": str(seed + 1), "LAB_OP_OFFSET": str(CRON_OP_OFFSET),
                    "LAB_STATUS_PATH": "/run/lab/status-cron", "LAB_RATE": str(1000 / cron_ms), "LAB_HOLD": "0",
                    "LAB_MIX": CRON_MIX, "LAB_RAW_OPEN_EVERY": "0", "LAB_LINGER_MS": "0", "LAB_OPS": "0"}
            self.put_file("/run/lab", "cron.env", "".join(f"{k}={_quote(v)}\n" for k, v in cron.items()))
            self.svc_up("cron")
            self.wait_for_line(lambda l: l.startswith('EVENT {"kind": "writer-ready"'), timeout,
                               "the cron writer to start")
        return json.loads(line[len("READY "):])

    def start_lossyfs(self, seed: int, args: str = "", timeout: float = 30.0) -> None:
        self.lossy_args = args
        env = {"LAB_SEED": str(seed), "LAB_LOSSY_BACKING": LOSSY_BACKING, "LAB_LOSSY_MOUNT": LOSSY_MOUNT,
               "LAB_LOSSY_ARGS": args}
        self.put_file("/run/lab", "lossyfs.env", "".join(f"{k}={_quote(v)}\n" for k, v in env.items()))
        self.svc_up("lossyfs")
        self.wait_for_line(lambda l: l.startswith("LOSSYFS READY"), timeout, "the lossy filesystem")

    def wait_for_acks(self, count: int, timeout: float = 60.0) -> int:
        """Block until the workload acknowledged ``count`` writes; returns the count seen."""
        deadline = time.monotonic() + timeout
        while True:
            acks = self.acks()
            if acks >= count:
                return acks
            if time.monotonic() > deadline:
                raise self._trial_error(f"only {acks} of {count} acknowledged writes after {timeout:.0f} s")
            if self._follower is not None and not self._follower.is_alive():
                raise self._trial_error(f"the machine ended after {acks} of {count} acknowledged writes")
            time.sleep(0.02)

    # -- faults ---------------------------------------------------------------------------------
    def agent(self, action: str, *, after_acks: int = 0, after_ms: int = 0, in_write: bool = False,
              delay_us: int = 0, on_write: bool = False, timeout: float = 60.0) -> AgentReport:
        """Run the in-machine fault agent: wait for the trigger, then fire ``action``."""
        argv = ["python3", "-m", "repro.workload.agent", "--action", action, "--after-acks", str(after_acks),
                "--after-ms", str(after_ms), "--delay-us", str(delay_us), "--timeout", str(timeout)]
        if in_write:
            argv.append("--in-write")
        if on_write:
            argv += ["--on-write", self.db_path.rsplit("/", 1)[0]]
        result = self.get_wrapped_container().exec_run(argv, user="root")
        output = (result.output or b"").decode("utf-8", "replace")
        for line in output.splitlines():
            if line.startswith("AGENT "):
                detail = json.loads(line[len("AGENT "):])
                if not detail.get("fired"):  # judging it as if it had fired would be a lie
                    raise self._trial_error(f"the fault's trigger never came ({detail.get('reason')}, "
                                            f"{detail.get('acks')} acks, after_acks={after_acks}): "
                                            f"{action} did not fire")
                return AgentReport(fired=True, acks=int(detail.get("acks", 0)),
                                   in_write=bool(detail.get("in_write")), detail=detail)
        raise self._trial_error(f"the fault agent failed (exit {result.exit_code}): {output.strip()[-300:]}")

    def stop(self, signal: str | None = None, timeout: float | None = None) -> StopReport:  # type: ignore[override]
        """Fly's stop: ``signal`` (the profile's kill_signal) to PID 1, then SIGKILL after the kill timeout."""
        sig = signal or self.profile.kill_signal
        if sig not in ("SIGINT", "SIGTERM"):
            raise ScenarioError(f"stop takes SIGINT or SIGTERM, not {sig}")
        grace = self.profile.kill_timeout_s if timeout is None else timeout
        self.faults_seen.append(sig.lower())
        container = self.get_wrapped_container()
        started = time.monotonic()
        try:
            container.kill(signal=sig)
        except docker.errors.APIError:
            pass  # already down
        graceful = True
        try:
            container.wait(timeout=grace)
        except Exception:  # requests' ReadTimeout: the grace period is over
            graceful = False
            try:
                container.kill(signal="SIGKILL")
            except docker.errors.APIError:
                pass
            container.wait(timeout=30)
        return self._down_report(sig, graceful, started)

    def kill_workload(self, **trigger: object) -> AgentReport:
        """SIGKILL the workload process from inside the machine (optionally mid-write)."""
        self.faults_seen.append("sigkill")
        report = self.agent("kill-workload", **trigger)  # type: ignore[arg-type]
        self.wait_for_line(lambda l: l.startswith('FINISH {"service":"session-store"'), 10, "the workload's end")
        return report

    def kill(self, signal: str = "SIGKILL") -> StopReport:  # type: ignore[override]
        """The machine dies without warning (a VM hard stop, from the processes' view)."""
        started = time.monotonic()
        container = self.get_wrapped_container()
        if not self.faults_seen:
            self.faults_seen.append("sigkill-machine")
        try:
            container.kill(signal=signal)
        except docker.errors.APIError:
            pass
        container.wait(timeout=30)
        return self._down_report(signal, False, started)

    def _down_report(self, sig: str, graceful: bool, started: float) -> StopReport:
        state = self.get_wrapped_container().client.api.inspect_container(self.get_container_id())["State"]
        if self._follower is not None:
            self._follower.join(timeout=5)
        return StopReport(signal=sig, exit_code=state.get("ExitCode"), graceful=graceful,
                          oom_killed=bool(state.get("OOMKilled")), seconds=round(time.monotonic() - started, 3))

    def fill_disk(self, *, clear_after_ms: int = 0, timeout: float = 60.0) -> dict[str, object]:
        """Start the npm-cache service and wait until the data disk is full; returns its event."""
        self.faults_seen.append("disk-fill-clear" if clear_after_ms else "disk-fill")
        self.put_file("/run/lab", "npm-cache.env", f"LAB_NPM_CLEAR_AFTER_MS={clear_after_ms}\n")
        self.svc_up("npm-cache")
        line = self.wait_for_line(lambda l: l.startswith('EVENT {"kind": "disk-full"'), timeout, "a full disk")
        return json.loads(line[len("EVENT "):])

    def oom(self, timeout: float = 60.0) -> dict[str, object]:
        """Make the workload leak until the cgroup OOM killer fires; returns who was killed and how."""
        self.faults_seen.append("oom")
        self.agent("leak", timeout=timeout)
        line = self.wait_for_line(lambda l: l.startswith('FINISH {"service":"session-store"'),
                                  timeout, "the OOM kill of the workload")
        finish = json.loads(line[len("FINISH "):])
        # The machine's own OOM-kill counter: memory.oom_control on cgroup v1, memory.events on v2.
        control = self.exec_checked(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null"
                                     " || cat /sys/fs/cgroup/memory.events"])
        kills = 0
        for row in control.splitlines():
            if row.startswith("oom_kill "):
                kills = int(row.split()[1])
        return {"service": finish.get("service"), "signal": finish.get("signal"), "kernel_oom_kills": kills}

    def cut_power(self, **trigger: object) -> AgentReport:
        """Power loss: the lossy filesystem drops everything not fsynced, then the machine dies."""
        if not self.fuse:
            raise ScenarioError("cut_power needs a machine started with_fuse()")
        self.faults_seen.append("power-loss")
        report = self.agent("cut-power", **trigger)  # type: ignore[arg-type]
        self.wait_for_line(lambda l: l.startswith("LOSSYFS CUT"), 10, "the power cut")
        self.kill()
        return report

    def finish_records(self) -> list[dict[str, object]]:
        return [json.loads(l[len("FINISH "):]) for l in self.lines() if l.startswith("FINISH ")]

    # -- the restarted machine --------------------------------------------------------------------
    @property
    def disk_db_dir(self) -> str:
        """Where the database files are on the data disk: behind the lossy mount on a FUSE machine."""
        return LOSSY_BACKING if self.fuse else DATA_DIR

    def snapshot_database(self) -> list[str]:
        """Keep the database files as they are now (the crash state) beside the disk, in its
        holder; ``fetch_database(crash_state=True)`` gets them later. Returns the names kept."""
        if self.disk is None:
            return []
        self._snapshot = self.disk.snapshot(self.disk_db_dir, DB_FILES)
        return self._snapshot

    def fetch_database(self, dest: pathlib.Path, crash_state: bool = True) -> list[str]:
        """Copy the database files into ``dest``: as the crash left them (the snapshot ``verify``
        took before the restarted machine opened them), or as they are on the disk now."""
        if self.disk is None:
            return []
        if crash_state and self._snapshot is not None:
            return self.disk.fetch(SNAPSHOT_DIR, dest)
        copied: list[str] = []
        for name in DB_FILES:
            copied += self.disk.fetch(f"{self.disk_db_dir}/{name}", dest)
        return copied

    def verify(self, faults: tuple[str, ...] | None = None, timeout: float = 120.0) -> "VerifyResult":
        """Bring the machine down if it is up, then reopen the database on the same disk in a
        fresh machine with the same store (the restarted machine) and judge it against the ledger.

        First the database files are snapshotted as the crash left them (opening them replays
        the WAL or rolls back a hot journal, and the store may repair the file): see
        ``fetch_database``."""
        from repro.oracle import judge  # the judging half
        from repro.probe import ProbeError, parse_probe_output

        container = self.get_wrapped_container()
        container.reload()
        if container.status == "running":
            self.kill()
        ledger = self.ledger()
        self.snapshot_database()
        probe_db = f"{self.disk_db_dir}/state.db"
        argv = ["python3", "-m", "repro.probe", probe_db]
        if self.store.store_path:
            argv += ["--store-path", STORE_MOUNT]
        restarted = ConstrainedHost(self.profile, store=self.store, image=self.image, disk=self.disk, role="verify")
        restarted.with_entrypoint(argv, user="1000:1000")
        with restarted:
            code = restarted.get_wrapped_container().wait(timeout=timeout)["StatusCode"]
            output = restarted.get_wrapped_container().logs().decode("utf-8", "replace")
        try:
            facts = parse_probe_output(output.splitlines())
        except ProbeError as exc:
            raise self._trial_error(f"the verifier printed no facts (exit {code}): {exc}") from None
        names = faults if faults is not None else tuple(self.faults_seen) or ("sigkill-machine",)
        judgement = judge(ledger, facts, names, lazy_dirs="--lazy-dirs" in self.lossy_args,
                          locks_dropped=self.raw_open_every > 0)
        return VerifyResult(ledger=ledger, facts=facts, judgement=judgement, probe_output=output)


@dataclass(frozen=True)
class VerifyResult:
    """What the restarted machine found, and the oracle's verdict on it."""

    ledger: Ledger
    facts: "ProbeFacts"
    judgement: "Judgement"
    probe_output: str

    @property
    def verdict(self) -> str:
        return self.judgement.verdict.value

    @property
    def integrity(self) -> str:
        ver = self.judgement.verification
        return ver.health.integrity if ver is not None else "unknown"

    @property
    def acked(self) -> int:
        ver = self.judgement.verification
        return ver.acked if ver is not None else 0

    @property
    def lost_acked(self) -> int:
        ver = self.judgement.verification
        return ver.lost_acked if ver is not None else 0

    @property
    def phantom(self) -> int:
        ver = self.judgement.verification
        return ver.phantom if ver is not None else 0


_cpu_lock = threading.Lock()
_cpu_next = 0


def _next_cpus(cpus: float) -> str:
    """Host CPUs for the next machine: a 1-vCPU Fly machine runs every process on one CPU.

    A CFS quota alone (nano_cpus) still lets two processes of the machine run at the same
    time on two host CPUs -- the workload and the FUSE daemon, the workload and the fault
    agent -- which no 1-vCPU machine can. So the machine is also pinned to ceil(cpus) host
    CPUs, handed out round robin so that trials running side by side get different ones.
    """
    global _cpu_next
    available = sorted(os.sched_getaffinity(0))
    want = max(1, min(len(available), math.ceil(cpus)))
    with _cpu_lock:
        start = _cpu_next
        _cpu_next = (_cpu_next + want) % len(available)
    return ",".join(str(available[(start + i) % len(available)]) for i in range(want))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"

