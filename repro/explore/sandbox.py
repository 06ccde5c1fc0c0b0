"""The explore sandbox: one long-lived container per exploration in which the checkers import and open the store under test.

Checking a crash state runs the probe, and the probe imports the store under test: untrusted
code. It never runs in the lab's process (root, the Docker socket at hand): the states are
checked by workers (repro/explore/worker.py) in one container per exploration -- the lab
image, uid 1000, no network, no capability, no Docker socket, a read-only root with a tmpfs
/tmp for the states, and the trace and the store uploaded through the engine (as a machine's
inputs are: repro/machine/inputs.py) into a volume it mounts read-only. Container and volume
carry the run's owner labels, so the lab's cleanup (repro/machine/reaper.py) removes them
when the run ends by any path; ``Sandbox`` removes them itself when it is closed.

A worker is one ``docker exec`` whose stdin and stdout carry framed records
(repro/explore/wire.py); its stderr -- where anything the store prints goes -- is kept, capped,
for the error message if the worker fails.
"""

from __future__ import annotations

import collections
import contextlib
import pathlib
import socket
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TypeVar

from repro.machine import engine  # first: it sets the testcontainers environment

import docker.errors  # noqa: E402
from docker.types import Mount  # noqa: E402

from repro.errors import LabError, ScenarioError, shown  # noqa: E402
from repro.explore.check import ChunkStats, StateResult  # noqa: E402
from repro.explore.blockspace import BlockModel  # noqa: E402
from repro.explore.models import PersistenceModel  # noqa: E402
from repro.explore.tracedir import META_FILE, TraceDir  # noqa: E402
from repro.explore.wire import ChannelClosed, Reader, WireError, frame, result_from_json, stats_from_json  # noqa: E402
from repro.machine.inputs import INPUTS_DIR, Input, InputKind, archive, machine_path  # noqa: E402
from repro.machine.labels import IMAGE, RUN_ID, labels  # noqa: E402
from repro.machine.limits import LOGS  # noqa: E402
from repro.source.layout import store_layout  # noqa: E402

if TYPE_CHECKING:
    from docker.models.containers import Container

ROLE = "explore-sandbox"
# The engine uploads into a volume only through a writable mount: the sandbox mounts its inputs
# volume writable here (root-owned, so uid 1000 cannot write it) for the upload, and read-only at
# INPUTS_DIR, where the workers read the trace and import the store.
UPLOAD_DIR = "/opt/lab-upload"
SCRATCH_DIR = "/tmp"  # the states, written and thrown away by the thousand: a tmpfs
SCRATCH_SIZE = "1g"
MEMORY = "3g"  # the scratch tmpfs is charged to the sandbox's memory, with the workers' own
PIDS = 512
CPU_SHARES = 1024  # one process's weight (the kernel's default for a group, and for a task of the root group)
MAX_TRACE_BYTES = 2 << 30
WORKER_MODULE = "repro.explore.worker"
STDERR_TAIL = 4000  # characters of a worker's stderr kept for its error message
READY_TIMEOUT_S = 120.0  # a worker loads the trace before it answers
BATCH_TIMEOUT_S = 120.0  # plus PER_STATE_S per state: then the batch is stuck (a store that hangs)
PER_STATE_S = 2.0


class SandboxError(LabError):
    """The sandbox or one of its workers failed: a lab error, never a verdict on a store."""


RECOVER_MODULE = "repro.explore.recover"
# The recoverers' states: a tmpfs of its own, root's (mode 755), so that no uid-1000 process -- the store under
# test, or anything it forked -- can make or replace a directory there before a recoverer does (/tmp is 1777).
RECOVERED_ROOT = "/var/lib/lab-recovered"
RECOVERED_DIR = f"{RECOVERED_ROOT}/recovered"  # + "-<n>": one recoverer's states, readable by the checkers


def settings(mounts: list[Mount], jobs: int = 1, loops: Sequence[str] = ()) -> dict[str, Any]:
    """docker-py ``containers.create`` keyword arguments of the sandbox (see the module docstring).

    CPU: the weight of ``jobs`` processes. A container is one group to the kernel's scheduler,
    weighed as one process of the host's (1024 shares under cgroup v1): on a busy machine its
    ``jobs`` checkers would otherwise share the CPU time one process gets.

    ``loops``: a block-level exploration's candidate loop devices (repro/machine/loops.py). Only then
    does the sandbox get them, CAP_SYS_ADMIN and an unconfined AppArmor profile -- used by the root
    recoverers alone (repro/explore/recover.py), which mount states and never import the store; the
    checkers run as uid 1000, whose processes hold no capability and cannot open the device nodes."""
    extra: dict[str, Any] = {}
    scratch = {SCRATCH_DIR: f"rw,nosuid,nodev,size={SCRATCH_SIZE},mode=1777"}
    if loops:
        extra = dict(cap_add=["SYS_ADMIN"], devices=[f"{d}:{d}:rwm" for d in loops])
        scratch[RECOVERED_ROOT] = f"rw,nosuid,nodev,size={SCRATCH_SIZE},mode=755"
    return dict(
        cpu_shares=CPU_SHARES * max(1, jobs),
        # with loops the container's own user is root, so that a root exec (the recoverer) holds CAP_SYS_ADMIN;
        # its one process is a sleep, and every checker is exec'd as uid 1000 explicitly
        entrypoint=["sleep", "infinity"], user="0:0" if loops else "1000:1000", network_mode="none", read_only=True,
        cap_drop=["ALL"], security_opt=["no-new-privileges=true", *(["apparmor=unconfined"] if loops else [])],
        mem_limit=MEMORY, memswap_limit=MEMORY,
        pids_limit=PIDS, tmpfs=scratch,
        labels=labels(ROLE), mounts=mounts, log_config=LOGS, working_dir=SCRATCH_DIR, **extra,
    )


@dataclass(frozen=True)
class Hello:
    """What a worker said once it had loaded the trace."""

    pid: int
    uid: int
    sqlite_version: str


def recorded_store(trace: TraceDir) -> pathlib.Path | None:
    """The store a recording names (None: the image's own), checked to be one -- an absolute path to a
    directory holding a ``hermes_state`` package or module, as --store-path must -- or ScenarioError.
    It is only ever uploaded into the sandbox, never imported here."""
    text = trace.recording.store_path
    if text is None:
        return None
    where = f"{trace.path / META_FILE}: store_path"
    if "\0" in text or not pathlib.PurePath(text).is_absolute():
        raise ScenarioError(f"{where} {shown(text)} is not an absolute path")
    try:
        store_layout(text)
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return pathlib.Path(text).resolve()


class Worker:
    """One checker process in the sandbox, driven over its exec's stdin and stdout."""

    def __init__(self, api: Any, exec_id: str, sock: Any) -> None:
        self._api = api
        self.exec_id = exec_id
        # docker-py's SocketIO holds the HTTP response, which (a reference cycle) the cyclic garbage collector
        # may collect at any moment, closing the socket under a read (EBADF mid-batch): keep it until close().
        self._io = sock
        self._sock = getattr(sock, "_sock", sock)  # the socket under docker-py's SocketIO
        self._stdout = b""
        self._stderr: collections.deque[str] = collections.deque(maxlen=64)
        self._reader = Reader(self._read_stdout)
        self._seq = 0
        self.hello = self._hello()

    def _recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            try:
                chunk = self._sock.recv(n - len(data))
            except socket.timeout:
                raise SandboxError("a worker in the explore sandbox stopped answering (a batch ran past its "
                                   f"deadline){self._tail()}") from None
            except OSError as exc:  # the engine's connection broke (or the sandbox was removed under it)
                raise SandboxError(f"lost a worker in the explore sandbox: {exc}{self._tail()}") from None
            if not chunk:
                return data
            data += chunk
        return data

    def _read_stdout(self, _n: int) -> bytes:
        """The next bytes of the worker's stdout, from the engine's multiplexed stream (stderr kept aside)."""
        while True:
            header = self._recv_exactly(8)
            if len(header) < 8:
                return b""
            kind, size = header[0], struct.unpack(">I", header[4:8])[0]
            payload = self._recv_exactly(size)
            if kind == 1:
                return payload
            self._stderr.append(payload.decode("utf-8", "replace")[-STDERR_TAIL:])

    def _tail(self) -> str:
        text = "".join(self._stderr).strip()[-STDERR_TAIL:]
        return f"; its stderr ends: {text[-600:]}" if text else ""

    def _exit(self) -> str:
        try:
            code = self._api.exec_inspect(self.exec_id).get("ExitCode")
        except docker.errors.DockerException:
            return ""
        return f" (exit {code})" if code is not None else ""

    def _receive(self, timeout: float) -> dict[str, Any]:
        self._sock.settimeout(timeout)
        try:
            record = self._reader.next()
        except ChannelClosed:
            raise SandboxError(f"a worker in the explore sandbox ended{self._exit()}{self._tail()}") from None
        except WireError as exc:
            raise SandboxError(f"a worker in the explore sandbox broke its channel: {exc}{self._tail()}") from None
        if not isinstance(record, dict):
            raise SandboxError(f"a worker in the explore sandbox sent {str(record)[:80]!r}")
        if "error" in record:
            raise SandboxError(f"{str(record['error'])[:600]}{self._tail()}")
        return record

    def _hello(self) -> Hello:
        ready = self._receive(READY_TIMEOUT_S).get("ready")
        if not isinstance(ready, dict):
            raise SandboxError("a worker in the explore sandbox did not say it was ready")
        return Hello(int(ready.get("pid", 0)), int(ready.get("uid", -1)), str(ready.get("sqlite_version", "?")))

    def request(self, payload: Mapping[str, Any], states: int) -> dict[str, Any]:
        """Send one request about ``states`` states and wait for its reply."""
        try:
            self._sock.sendall(frame(self._seq, payload))
        except OSError as exc:
            raise SandboxError(f"cannot reach a worker in the explore sandbox: {exc}{self._tail()}") from None
        self._seq += 1
        return self._receive(BATCH_TIMEOUT_S + PER_STATE_S * states)

    def check(self, batch: Sequence[tuple[str, int]], recovered: Sequence[Mapping[str, Any]] | None = None,
              ) -> tuple[list[StateResult], ChunkStats]:
        """Check one batch of states (model, index) -- block-level ones with what the recoverer made of
        each; their results and what they cost."""
        payload: dict[str, Any] = {"batch": [list(ref) for ref in batch]}
        if recovered is not None:
            payload["recovered"] = list(recovered)
        record = self.request(payload, len(batch))
        results = record.get("results")
        if not isinstance(results, list) or len(results) != len(batch):
            raise SandboxError(f"a worker in the explore sandbox answered {len(batch)} states with "
                               f"{len(results) if isinstance(results, list) else 'no'} results")
        checked = [result_from_json(r) for r in results]
        if [(r.model.value, r.index) for r in checked] != [(m, i) for m, i in batch]:
            raise SandboxError("a worker in the explore sandbox answered for other states than it was asked")
        return checked, stats_from_json(record.get("stats") or {})

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)  # the end of its stdin: the worker exits
        except OSError:
            pass
        for closable in (self._sock, self._io):
            try:
                closable.close()
            except OSError:
                pass


class Recoverer(Worker):
    """One root recoverer in the sandbox (repro/explore/recover.py): mounts a batch of block-level states."""

    def recover(self, batch: Sequence[tuple[str, int]], slot: int = 0) -> tuple[list[dict[str, Any]], float]:
        """Recover a batch into ``slot`` (0 or 1: the other may still be probed); what became of each state,
        and the seconds the recoverer spent (images, mounts, copies)."""
        record = self.request({"batch": [list(ref) for ref in batch], "slot": slot}, len(batch))
        got = record.get("recovered")
        if not isinstance(got, list) or len(got) != len(batch) or not all(isinstance(g, dict) for g in got):
            raise SandboxError(f"a recoverer in the explore sandbox answered {len(batch)} states with "
                               f"{len(got) if isinstance(got, list) else 'no'} results")
        states = [{"mounted": bool(g.get("mounted")), "error": str(g.get("error", ""))[:400],
                   "dir": str(g.get("dir", ""))} for g in got]
        seconds = record.get("seconds")
        return states, float(seconds) if isinstance(seconds, (int, float)) else 0.0


_W = TypeVar("_W", bound=Worker)


class Sandbox:
    """The sandbox of one exploration: made by ``open``, removed by ``close`` (or the run's cleanup)."""

    def __init__(self, trace: TraceDir, *, image: str = IMAGE, jobs: int = 1, loops: Sequence[str] = ()) -> None:
        self.trace = trace
        self.loops = tuple(loops)
        self.image = image
        self.jobs = jobs
        self.store = recorded_store(trace)  # checked before anything is made: a recording is data
        self._container: Container | None = None
        self._volume = ""
        self._workers: list[Worker] = []
        self._starting = threading.Lock()
        self._lock = threading.Lock()

    def __enter__(self) -> Sandbox:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def trace_mount(self) -> str:
        return machine_path(InputKind.TRACE)

    @property
    def store_mount(self) -> str | None:
        return machine_path(InputKind.STORE) if self.store is not None else None

    def open(self) -> Sandbox:
        inputs = [Input(InputKind.TRACE, self.trace.path)]
        if self.store is not None:
            inputs.append(Input(InputKind.STORE, self.store))
        tar = archive(tuple(inputs), limit=MAX_TRACE_BYTES)
        cli = engine.client()
        try:
            self._volume = cli.volumes.create(driver="local", labels=labels("explore-inputs")).name
            mounts = [Mount(target=UPLOAD_DIR, source=self._volume, type="volume"),
                      Mount(target=INPUTS_DIR, source=self._volume, type="volume", read_only=True)]
            container = cli.containers.create(self.image, **settings(mounts, self.jobs, self.loops))
            self._container = container
            container.start()
            container.put_archive(UPLOAD_DIR, tar)
        except docker.errors.ImageNotFound:
            self.close()
            raise ScenarioError(f"the image {shown(self.image)} is not on the engine: build it with "
                                "`repro image build`, or leave out --image") from None
        except docker.errors.DockerException as exc:
            self.close()
            raise SandboxError(f"cannot start the explore sandbox: {engine._short(exc)}") from None
        except BaseException:
            self.close()
            raise
        return self

    def worker(self, models: Sequence[PersistenceModel | BlockModel], *, images: bool = True,
               recovered: str | None = None) -> Worker:
        """Start one more checker in the sandbox, with the recording's store settings as its environment;
        ``recovered``: a block-level checker, reading the states its recoverer leaves there."""
        argv = ["python3", "-m", WORKER_MODULE, self.trace_mount, "--models", ",".join(m.value for m in models),
                "--scratch", SCRATCH_DIR]
        if self.store_mount is not None:
            argv += ["--store-mount", self.store_mount]
        if not images:
            argv.append("--no-images")
        if recovered is not None:
            argv += ["--recovered", recovered]
        return self._start(argv, Worker, user="1000:1000", environment=dict(self.environment()))

    def recoverer(self, models: Sequence[BlockModel], out: str) -> Recoverer:
        """Start one root recoverer for a block-level exploration; it leaves its states in ``out``."""
        if not self.loops:
            raise SandboxError("the explore sandbox was opened without loop devices")
        fs = self.trace.recording.fs
        argv = ["python3", "-m", RECOVER_MODULE, self.trace_mount, "--models", ",".join(m.value for m in models),
                "--out", out, "--devices", ",".join(self.loops), "--fs", fs.kind.value if fs else "", "--scratch",
                SCRATCH_DIR, "--run", RUN_ID]
        return self._start(argv, Recoverer, user="0:0", environment={})

    def _start(self, argv: list[str], kind: type[_W], *, user: str, environment: Mapping[str, str]) -> _W:
        container = self._container
        if container is None:
            raise SandboxError("the explore sandbox is not open")
        api = container.client.api
        try:
            # One start at a time: an exec's stream is a connection taken out of the engine client's pool,
            # and two threads starting workers at once raced for the same one (EBADF in a worker later).
            with self._starting:
                exec_id = api.exec_create(container.id, argv, stdin=True, stdout=True, stderr=True, tty=False,
                                          environment=dict(environment), user=user, workdir=SCRATCH_DIR)["Id"]
                sock = api.exec_start(exec_id, socket=True)
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot start a worker in the explore sandbox: {engine._short(exc)}") from None
        try:
            worker = kind(api, exec_id, sock)  # waits for its hello
        except BaseException:
            with contextlib.suppress(OSError):
                getattr(sock, "_sock", sock).close()
            raise
        with self._lock:
            self._workers.append(worker)
        return worker

    def environment(self) -> Mapping[str, str]:
        """The store's settings as the recording machine had them (only the lab's HERMES_STATE_* names)."""
        return dict(self.trace.recording.store_env)

    def close(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()
        container, self._container = self._container, None
        volume, self._volume = self._volume, ""
        engine.discard(container, [volume])

    @property
    def container(self) -> "Container | None":
        return self._container

