"""The gateway-like workload: drives the store under test and writes the Jepsen ledger on the evidence channel.

Run inside the machine by the s6 ``session-store`` service as the unprivileged user:
``python3 -m repro.workload`` with LAB_* settings in the environment (see config.py).
Only the public API of docs/FACTS.md section 2 is used, so any version of the store --
ours, an older release, the upstream module -- runs under the same workload.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import pathlib
import random
import signal
import sys
import threading
import time
from typing import Any, Callable

from repro import channel
from repro.ledger import OpKind
from repro.protocol import EventKind, Tag
from repro.verify.importcheck import import_store
from repro.workload import READY_PRAGMAS, content, sqlite_in_force
from repro.workload.config import WorkloadConfig, WorkloadConfigError
from repro.workload.refusals import PROBE_EVERY_S, Change, Refusals
from repro.workload.status import (
    CMD_LEAK,
    CMD_NONE,
    IDLE,
    IN_WRITE,
    PHASE_DONE,
    PHASE_RUNNING,
    PHASE_STOPPING,
    StatusBoard,
)

# Errors after which SQLite has certainly rolled the write back (a definite "fail").
_DEFINITE = ("full", "locked", "busy", "constraint", "readonly", "read-only")


# The longest the loop sleeps between looks at the stop signal and the leak command while it waits to probe.
PAUSE_S = 0.05

emit = channel.emit  # one framed record on the evidence channel (repro/channel.py), never on stdout


def sha(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def _seeded_retry(store_module: Any, seed: int) -> dict[str, Any]:
    """The store's busy/locked retry jitter seeded from the trial, where the store lets us
    (this repository's store does; upstream's SessionDB(db_path) takes no such argument)."""
    policy = getattr(store_module, "RetryPolicy", None)
    try:
        accepts = "retry" in inspect.signature(store_module.SessionDB).parameters
    except (TypeError, ValueError):
        accepts = False
    return {"retry": policy.seeded(seed)} if policy is not None and accepts else {}


class Marks:
    """The trace marks of a recorded run (LAB_MARK_SOCKET): "ready <index>" after READY (the ledger
    index before this run's first operation), then "ack <index>" after each ok.

    Off (no socket) it costs one attribute test per operation. A mark returns once the lossyfs
    daemon recorded it, so every request the acknowledged call completed (its fsyncs, and the
    writes the kernel sent for them) precedes it in the trace; data the call left in the kernel's
    write cache reaches the trace later, as it reaches the disk (repro/lossyfs/trace.py). If the
    daemon goes away (a clean stop racing the last call) marking stops with one note on stderr:
    the ledger is what counts, the marks only place it in the trace.
    """

    def __init__(self, socket_path: str) -> None:
        self._client: Any = None
        self._errors: tuple[type[BaseException], ...] = ()
        if socket_path:
            from repro.lossyfs.trace import MarkClient, TraceError  # stdlib only, like the workload

            self._client = MarkClient(socket_path)
            self._errors = (OSError, TraceError)

    def send(self, label: str) -> None:
        if self._client is None:
            return
        try:
            self._client.mark(label)
        except self._errors as exc:
            self._give_up(label, exc)

    def _give_up(self, label: str, exc: BaseException) -> None:
        print(f"workload: mark {label!r} not recorded, marking stops: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        self._client = None


class Workload:
    """One run of the workload against one store instance."""

    def __init__(self, cfg: WorkloadConfig, store_module: Any, board: StatusBoard | None) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.board = board
        self.db = store_module.SessionDB(pathlib.Path(cfg.db_path), **_seeded_retry(store_module, cfg.seed))
        self.index = cfg.op_offset  # ledger indices: a second writer's start above the gateway's
        self.acks = 0
        self.open_sessions: list[str] = []
        self.session_serial = 0
        self.stop_at: float | None = None
        self.leak: list[bytearray] = []
        mix = cfg.weights()
        ops = [name for name, _ in mix]
        weights = [weight for _, weight in mix]
        self._choose: Callable[[], str] = lambda: self.rng.choices(ops, weights)[0]
        self.marks = Marks(cfg.mark_socket)
        self.refusals = Refusals()
        self.next_probe = 0.0  # while the store is unusable: when the next call may be made

    # -- the ledger -------------------------------------------------------------
    def call(self, op: str, args: dict[str, object], fn: Callable[[], Any],
             result: Callable[[Any], dict[str, object]] = lambda r: {}) -> bool:
        """invoke -> store call -> ok/fail/info, with the status board kept in step; True if ok."""
        self.index += 1
        index = self.index
        board = self.board
        is_write = op != OpKind.SEARCH.value
        if board:
            board.set_invoked(index)
            if is_write:  # not a read: `--in-write` must not fire in it
                board.set_in_write(IN_WRITE)
        emit(Tag.LEDGER, {"i": index, "t": "invoke", "op": op, "args": args})
        try:
            value = fn()
        except Exception as exc:  # every failure is recorded, none is fatal
            if board:
                board.set_in_write(IDLE)
            message = f"{type(exc).__name__}: {exc}"
            definite = any(word in str(exc).lower() for word in _DEFINITE)
            emit(Tag.LEDGER, {"i": index, "t": "fail" if definite else "info", "err": message})
            self.noted(self.refusals.refused(index, is_write, exc, message), index)
            if "full" in str(exc).lower():
                time.sleep(0.02)  # a gateway backs off when the disk is full
            return False
        if board:
            board.set_in_write(IDLE)
        emit(Tag.LEDGER, {"i": index, "t": "ok", "result": result(value)})
        self.marks.send(f"ack {index}")
        if is_write:
            self.acks += 1
            if board:
                board.set_acks(self.acks)
        self.noted(self.refusals.acknowledged(is_write), index)
        return True

    def noted(self, change: Change | None, index: int) -> None:
        """One EVENT line when the store becomes unusable or works again (repro/workload/refusals.py)."""
        refusals = self.refusals
        if change is Change.UNUSABLE:
            emit(Tag.EVENT, {"kind": EventKind.STORE_UNUSABLE.value, "role": self.cfg.role, "i": index,
                             "since": refusals.since, "refused": refusals.streak, "errors": list(refusals.errors),
                             "acks": self.acks, "probe_every_s": PROBE_EVERY_S})
        elif change is Change.RECOVERED:
            emit(Tag.EVENT, {"kind": EventKind.STORE_RECOVERED.value, "role": self.cfg.role, "i": index,
                             "probes": refusals.probes, "acks": self.acks})
        if refusals.unusable:
            self.next_probe = time.monotonic() + PROBE_EVERY_S

    # -- the operations -----------------------------------------------------------
    def create(self) -> None:
        self.session_serial += 1
        sid = f"s{self.cfg.seed}-{self.session_serial:05d}"
        model = self.rng.choice(("claude-sonnet", "gpt-5", "local-llama"))
        source = self.rng.choice(("telegram", "cli", "discord", "cron"))
        if self.call("create_session", {"session_id": sid, "source": source, "model": model},
                     lambda: self.db.create_session(sid, source, model=model)):
            self.open_sessions.append(sid)

    def session(self) -> str | None:
        """An open session to write to, creating one if none is open (None if that failed)."""
        if not self.open_sessions:
            self.create()
        return self.rng.choice(self.open_sessions) if self.open_sessions else None

    def append(self) -> None:
        sid = self.session()
        if sid is None:
            return
        kwargs = content.message(self.rng, *self.cfg.size_range())
        text = str(kwargs["content"])
        args = {"session_id": sid, "role": kwargs["role"], "sha": sha(text),
                "length": len(text), "tool_calls": "tool_calls" in kwargs}
        self.call("append_message", args,
                  lambda: self.db.append_message(sid, **kwargs),
                  lambda mid: {"id": mid})

    def tokens(self) -> None:
        sid = self.session()
        if sid is None:
            return
        inp, out = self.rng.randint(1, 5000), self.rng.randint(1, 2000)
        self.call("update_token_counts",
                  {"session_id": sid, "input_tokens": inp, "output_tokens": out},
                  lambda: self.db.update_token_counts(sid, input_tokens=inp, output_tokens=out))

    def end(self) -> None:
        if not self.open_sessions:
            return
        sid = self.open_sessions.pop(self.rng.randrange(len(self.open_sessions)))
        reason = self.rng.choice(("user_exit", "timeout", "compaction"))
        self.call("end_session", {"session_id": sid, "end_reason": reason},
                  lambda: self.db.end_session(sid, reason))

    def search(self) -> None:
        query = self.rng.choice(("checkpoint", "restart", "disk", "memory"))
        self.call("search_messages", {"query": query},
                  lambda: self.db.search_messages(query),
                  lambda hits: {"hits": len(hits) if hits is not None else 0})

    # -- the loop -------------------------------------------------------------------
    def run(self) -> None:
        by_kind = {OpKind.APPEND_MESSAGE: self.append, OpKind.UPDATE_TOKENS: self.tokens, OpKind.SEARCH: self.search,
                   OpKind.CREATE_SESSION: self.create, OpKind.END_SESSION: self.end}
        actions = {kind.value: action for kind, action in by_kind.items()}
        period = 1.0 / self.cfg.rate if self.cfg.rate > 0 else 0.0
        next_at = time.monotonic()
        while True:
            now = time.monotonic()
            if self.stop_at is not None and now >= self.stop_at:
                break
            if self.cfg.ops and self.index - self.cfg.op_offset >= self.cfg.ops:
                break
            if self.board and self.board.read().command == CMD_LEAK and not self.leak:
                self.start_leak()
            if self.refusals.unusable and now < self.next_probe:  # a bounded probe, not a flood
                time.sleep(min(PAUSE_S, self.next_probe - now))
                next_at = time.monotonic()  # no burst to catch up once the store works again
                continue
            actions[self._choose()]()
            if self.cfg.raw_open_every and self.index % self.cfg.raw_open_every == 0:
                self.raw_open()
            if period:
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def raw_open(self) -> None:
        """The raw-open hazard: what a size probe or a file copy in the gateway does. POSIX advisory
        locks belong to the process, and closing *any* descriptor of the file drops all of them
        (sqlite.org/howtocorrupt.html 2.2), so SQLite's locks on the live database are gone."""
        os.close(os.open(self.cfg.db_path, os.O_RDONLY))

    def wait_for_agent(self, board: StatusBoard) -> None:
        """Write nothing until the fault agent is watching (or a stop signal comes)."""
        while board.read().command == CMD_NONE and self.stop_at is None:
            time.sleep(0.0005)
        emit(Tag.EVENT, {"kind": EventKind.RELEASED.value, "command": board.read().command})

    def request_stop(self, signum: int, _frame: object) -> None:
        """A graceful stop: finish the current call, linger if asked, then close."""
        if self.stop_at is None:
            self.stop_at = time.monotonic() + self.cfg.linger_ms / 1000.0
            emit(Tag.EVENT, {"kind": EventKind.STOP_SIGNAL.value, "signal": signum,
                                         "acks": self.acks, "linger_ms": self.cfg.linger_ms})
            if self.board:
                self.board.set_phase(PHASE_STOPPING)

    def start_leak(self) -> None:
        """A memory leak in the gateway process, as on the beta machine: grows until the kernel kills it."""
        emit(Tag.EVENT, {"kind": EventKind.LEAK_STARTED.value, "acks": self.acks})

        def grow() -> None:
            while True:
                block = bytearray(4 << 20)
                for offset in range(0, len(block), 4096):
                    block[offset] = 1  # touch every page so it is really charged
                self.leak.append(block)
                time.sleep(0.005)

        self.leak.append(bytearray(1))
        threading.Thread(target=grow, daemon=True, name="leak").start()


def ready_facts(db: Any, cfg: WorkloadConfig, store_module: Any) -> dict[str, object]:
    """The SQLite library this process loaded and the pragmas actually in force on the store's
    own connection, as upstream's tests read them."""
    conn = getattr(db, "_conn", None)
    facts: dict[str, object] = {"pid": os.getpid(), "seed": cfg.seed, "db": cfg.db_path,
                                "store": getattr(store_module, "__file__", "?"), **sqlite_in_force()}
    if conn is not None:
        for pragma in READY_PRAGMAS:
            try:
                facts[pragma] = conn.execute(f"PRAGMA {pragma}").fetchone()[0]
            except Exception as exc:  # an exotic store: report, don't die
                facts[pragma] = f"error: {exc}"
    return facts


def _reopened(workload: Workload) -> int:
    """The rest of a reopen: what a restarted service reads first (the counts), then a clean close."""
    for name in ("session_count", "message_count"):
        try:
            getattr(workload.db, name)()
        except Exception as exc:  # a damaged file: the reopen is what is recorded, not its success
            emit(Tag.EVENT, {"kind": EventKind.READ_FAILED.value, "error": f"{name}: {type(exc).__name__}: {exc}"})
    workload.db.close()
    emit(Tag.EVENT, {"kind": EventKind.CLOSED.value, "acks": 0, "ops": 0})
    channel.close_channel()
    return 0


def main() -> int:
    # Before anything of the store is imported: the records get a descriptor of their own, and the
    # process's stdout and stderr (the store's) become OUTPUT records, capped.
    role = os.environ.get("LAB_ROLE", "gateway")
    channel.open_channel(role if role in ("gateway", "cron") else "workload")
    try:
        cfg = WorkloadConfig.from_env()
    except WorkloadConfigError as exc:
        emit(Tag.EVENT, {"kind": EventKind.CONFIG_ERROR.value, "error": str(exc)})
        return 2
    if cfg.ledger_file:
        channel.tee(cfg.ledger_file)
    board: StatusBoard | None = None
    try:
        board = StatusBoard(cfg.status_path, create=True)
        board.set_pid(os.getpid())
    except OSError:
        board = None  # outside a lab machine: no agent to talk to
    if cfg.reopen:  # the mark precedes everything the store does to the file it finds
        Marks(cfg.mark_socket).send(f"ready {cfg.op_offset}")
    try:
        store = import_store(cfg.store_mount or None)  # never the image's own when a store is mounted
        workload = Workload(cfg, store, board)
    except Exception as exc:  # the store failed to start: say so on the ledger
        emit(Tag.EVENT, {"kind": EventKind.STORE_OPEN_FAILED.value, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    signal.signal(signal.SIGTERM, workload.request_stop)
    signal.signal(signal.SIGINT, workload.request_stop)
    facts = ready_facts(workload.db, cfg, store)
    if cfg.reopen:
        emit(Tag.READY, facts)
        return _reopened(workload)
    if cfg.role == "gateway":
        emit(Tag.READY, facts)
        workload.marks.send(f"ready {workload.index}")  # the ledger index before the first operation
    else:  # one READY per ledger: the gateway's
        emit(Tag.EVENT, {"kind": EventKind.WRITER_READY.value, "role": cfg.role, **facts})
    if board:
        board.set_phase(PHASE_RUNNING)
        if cfg.hold:
            workload.wait_for_agent(board)
    workload.run()
    workload.db.close()
    if board:
        board.set_phase(PHASE_DONE)
    emit(Tag.EVENT, {"kind": EventKind.CLOSED.value, "acks": workload.acks, "ops": workload.index})
    channel.close_channel()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
