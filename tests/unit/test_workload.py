"""The in-machine workload, run on the host against the real store: its ledger, pragmas, replays and agent."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import types
from typing import Any, Iterator

import pytest

from repro.ledger import Ledger, parse_lines
from repro.protocol import EventKind, Tag, parse_line
from repro.verify.diff import Verification, diff
from repro.verify.probe import collect
from repro.workload import content
from repro.workload.__main__ import Workload
from repro.workload.config import WorkloadConfig
from repro.workload.status import IDLE, IN_WRITE, StatusBoard

STORE_ROOT = pathlib.Path(__file__).resolve().parents[2]  # holds the hermes_state package under test


def workload_env(tmp: pathlib.Path, **settings: str) -> dict[str, str]:
    """A clean environment: no LAB_* or HERMES_STATE_* leaking in from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "HERMES_STATE_"))}
    env["PYTHONPATH"] = str(STORE_ROOT)
    env.update(LAB_DB_PATH=str(tmp / "state.db"), LAB_STATUS_PATH=str(tmp / "status"), **settings)
    return env


def run_workload(tmp: pathlib.Path, **settings: str) -> subprocess.CompletedProcess[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "repro.workload"], env=workload_env(tmp, **settings),
                          capture_output=True, text=True, timeout=120)


def verify(ledger: Ledger, db: pathlib.Path) -> Verification:
    return diff(ledger, collect(db, str(STORE_ROOT)))


def test_workload_ledger_pragmas_and_verification(tmp_path: pathlib.Path) -> None:
    proc = run_workload(tmp_path, LAB_OPS="300", LAB_SEED="5")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ledger = parse_lines(proc.stdout.splitlines())
    assert len(ledger.operations) == 300
    assert all(op.outcome.value == "ok" for op in ledger.operations)
    kinds = {op.kind.value for op in ledger.operations}
    assert {"create_session", "append_message"} <= kinds
    assert ledger.ready["journal_mode"] == "wal"
    assert ledger.ready["synchronous"] == 1  # NORMAL under the default (ns506) preset
    assert ledger.ready["busy_timeout"] == 2000
    assert ledger.events[-1] == {"kind": "closed", "acks": len(ledger.acked), "ops": 300}

    v = verify(ledger, tmp_path / "state.db")
    assert v.acked == len(ledger.acked) > 200
    assert (v.lost, v.phantoms, v.mismatches, v.indeterminate) == ((), (), (), ())
    assert not v.corrupt and v.health.integrity == "ok"


def test_same_seed_same_operations(tmp_path: pathlib.Path) -> None:
    def ops(run: str, seed: str) -> list[tuple[str, str]]:
        proc = run_workload(tmp_path / run, LAB_OPS="120", LAB_SEED=seed)
        assert proc.returncode == 0, proc.stderr[-2000:]
        ledger = parse_lines(proc.stdout.splitlines())
        return [(op.kind.value, json.dumps(dict(op.args), sort_keys=True)) for op in ledger.operations]

    first = ops("a", "5")
    assert len(first) == 120
    assert ops("b", "5") == first
    assert ops("c", "6") != first


@pytest.mark.parametrize("mix", ["append=0,search=5", "bogus=3", "append=x", "append"])
def test_bad_mix_is_a_config_error(tmp_path: pathlib.Path, mix: str) -> None:
    proc = run_workload(tmp_path, LAB_OPS="10", LAB_MIX=mix)
    assert proc.returncode == 2
    events = [dict(p.payload) for p in map(parse_line, proc.stdout.splitlines()) if p is not None and p.tag is Tag.EVENT]
    assert [e["kind"] for e in events] == ["config-error"]
    assert "mix" in events[0]["error"] and "int()" not in events[0]["error"]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state.db").exists()  # nothing written with a bad configuration


class _Reader(threading.Thread):
    """Drain a process's stdout so it never blocks, keeping every line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc, self.lines = proc, []  # type: ignore[var-annotated]

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, tag: Tag, timeout: float, kind: EventKind | None = None) -> str:
        """The first line with that tag (and, for an EVENT, that kind), as the lab parses it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                parsed = parse_line(line)
                if parsed is not None and parsed.tag is tag and (kind is None or parsed.is_event(kind)):
                    return line
            if self.proc.poll() is not None and not self.is_alive():
                break
            time.sleep(0.01)
        raise AssertionError(f"no {tag.value} {kind or ''} line; output: {self.lines[-10:]}")


@contextlib.contextmanager
def running_workload(tmp: pathlib.Path, **settings: str) -> Iterator[tuple[subprocess.Popen[str], _Reader]]:
    """A workload process that has said READY; killed on the way out if still alive, output drained."""
    proc = subprocess.Popen([sys.executable, "-m", "repro.workload"], env=workload_env(tmp, **settings),
                            stdout=subprocess.PIPE, text=True)
    reader = _Reader(proc)
    reader.start()
    try:
        reader.wait_for(Tag.READY, 30)
        yield proc, reader
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)


def kill_by_agent(tmp: pathlib.Path, after_acks: int) -> dict[str, Any]:
    """Run the fault agent: SIGKILL the workload once it has ``after_acks`` acks; its report."""
    agent = subprocess.run(
        [sys.executable, "-m", "repro.workload.agent", "--after-acks", str(after_acks), "--action", "kill-workload",
         "--status", str(tmp / "status"), "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert agent.returncode == 0, agent.stdout + agent.stderr
    report: dict[str, Any] = json.loads(agent.stdout.split("AGENT ", 1)[1])
    return report


def test_agent_kills_the_workload_and_no_acked_write_is_lost(tmp_path: pathlib.Path) -> None:
    with running_workload(tmp_path, LAB_OPS="0", LAB_RATE="200", LAB_SEED="9") as (proc, reader):
        report = kill_by_agent(tmp_path, 30)
        assert report["fired"] is True and report["acks"] >= 30 and report["pid"] == proc.pid
        assert proc.wait(timeout=10) == -signal.SIGKILL
    ledger = parse_lines(reader.lines)
    assert not any(e.get("kind") == "closed" for e in ledger.events)  # it died; it did not finish
    assert len(ledger.acked) >= report["acks"]
    v = verify(ledger, tmp_path / "state.db")
    assert v.lost_acked == 0 and not v.corrupt, v.problems()


def test_a_held_workload_waits_for_the_agent_so_the_trigger_lands_at_n(tmp_path: pathlib.Path) -> None:
    with running_workload(tmp_path, LAB_OPS="0", LAB_RATE="0", LAB_SEED="4", LAB_HOLD="1") as (proc, reader):
        time.sleep(0.3)  # flat out, an unheld workload would be hundreds of writes in by now
        assert StatusBoard(str(tmp_path / "status")).read().acks == 0
        assert not any(line.startswith("LEDGER ") for line in reader.lines)
        report = kill_by_agent(tmp_path, 25)
        assert 25 <= report["acks"] < 60  # at N, give or take the agent's polling on a busy machine
        assert proc.wait(timeout=10) == -signal.SIGKILL
    assert reader.wait_for(Tag.EVENT, 1, EventKind.RELEASED)


def test_agent_refuses_to_kill_without_a_workload_pid(tmp_path: pathlib.Path) -> None:
    """A board with no pid on it: os.kill(0, SIGKILL) would kill the agent's own process group."""
    StatusBoard(str(tmp_path / "status"), create=True).close()
    agent = subprocess.run(
        [sys.executable, "-m", "repro.workload.agent", "--after-acks", "0", "--action", "kill-workload",
         "--status", str(tmp_path / "status"), "--timeout", "5"],
        capture_output=True, text=True, timeout=30, start_new_session=True)  # its own group, whatever happens
    assert agent.returncode == 1
    assert "no workload pid" in agent.stderr


class _FakeDB:
    """Records what the status board said while each store call ran."""

    seen: dict[str, int] = {}

    def __init__(self, path: pathlib.Path) -> None:
        self.board: StatusBoard | None = None

    def _note(self, name: str) -> None:
        assert self.board is not None
        _FakeDB.seen[name] = self.board.read().in_write

    def create_session(self, *args: object, **kwargs: object) -> None:
        self._note("create_session")

    def append_message(self, *args: object, **kwargs: object) -> int:
        self._note("append_message")
        return 1

    def search_messages(self, query: str) -> list[object]:
        self._note("search_messages")
        return []


def test_in_write_flag_is_set_for_writes_only(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`sigkill@in-write` must land in a write, never in a search."""
    board = StatusBoard(str(tmp_path / "status"), create=True)
    workload = Workload(WorkloadConfig(seed=1, db_path=str(tmp_path / "x.db"), mix="append=1"),
                        types.SimpleNamespace(SessionDB=_FakeDB), board)
    workload.db.board = board
    _FakeDB.seen = {}
    workload.append()  # creates a session first, then appends
    workload.search()
    assert _FakeDB.seen == {"create_session": IN_WRITE, "append_message": IN_WRITE, "search_messages": IDLE}
    snap = board.read()
    assert (snap.in_write, snap.acks, snap.invoked) == (IDLE, 2, 3)
    ledger = parse_lines(capsys.readouterr().out.splitlines())
    assert [op.kind.value for op in ledger.operations] == ["create_session", "append_message", "search_messages"]


def test_content_is_seeded_and_within_bounds() -> None:
    def sequence(seed: int) -> list[dict[str, object]]:
        rng = random.Random(seed)
        return [content.message(rng, 200, 20_000) for _ in range(20)]

    assert sequence(42) == sequence(42)
    assert sequence(43) != sequence(42)

    rng = random.Random(1)
    messages = [content.message(rng, 200, 20_000) for _ in range(5000)]
    lengths = [len(str(m["content"])) for m in messages]
    assert min(lengths) >= 200 and max(lengths) <= 20_000
    assert 1000 < sorted(lengths)[len(lengths) // 2] < 4000  # log-uniform: median near sqrt(200 * 20000)
    assert any("tool_calls" in m for m in messages) and any(m["role"] == "tool" for m in messages)
    rng = random.Random(2)
    assert {len(str(content.message(rng, 300, 300)["content"])) for _ in range(200)} == {300}
    assert {len(content.text(random.Random(s), 5)) for s in range(200)} == {5}


_GATEWAY = """
import sys
import hermes_state
from repro.workload.__main__ import Workload
from repro.workload.config import WorkloadConfig
from repro.workload.spec import Hazard
w = Workload(WorkloadConfig(seed=1, db_path=sys.argv[1], mix="append=1", hazards=(Hazard.parse("raw-open=1"),)),
             hermes_state, None)
for _ in range(5):
    w.append()
print("OPEN", flush=True)
sys.stdin.readline()
w.raw_open()
print("RAW", flush=True)
sys.stdin.readline()
"""


def test_the_raw_open_hazard_lets_another_process_delete_the_gateways_wal(tmp_path: pathlib.Path) -> None:
    """The mechanism behind the raw-open + dashboard corruption, deterministically: the gateway's
    open WAL survives another process's open/close until the gateway's own raw open()/close()
    of its database file cancels its POSIX locks; then that close checkpoints and deletes the WAL
    the gateway is still writing to."""
    db = tmp_path / "state.db"
    wal = tmp_path / "state.db-wal"
    gateway = subprocess.Popen([sys.executable, "-c", _GATEWAY, str(db)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=pathlib.Path(__file__).resolve().parents[2])
    assert gateway.stdin is not None and gateway.stdout is not None

    def read_until(marker: str) -> None:  # the workload's ledger lines come first
        assert gateway.stdout is not None
        for line in gateway.stdout:
            if line.strip() == marker:
                return
        raise AssertionError(f"the gateway ended before {marker}")

    def dashboard_visit() -> int:
        conn = sqlite3.connect(db)
        try:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        finally:
            conn.close()

    try:
        read_until("OPEN")
        assert dashboard_visit() == 5 and wal.exists()  # the gateway's shared lock kept its WAL alive
        gateway.stdin.write("go\n")
        gateway.stdin.flush()
        read_until("RAW")
        assert dashboard_visit() == 5 and not wal.exists()  # locks gone: the visitor deleted the live WAL
    finally:
        gateway.kill()
        gateway.wait()


def test_a_cron_writer_shares_the_database_and_the_merged_ledger_accounts_for_every_row(
        tmp_path: pathlib.Path) -> None:
    """The cron hazard's accounting: two writer processes on one state.db, each with its own
    ledger indices and sessions; merged, the ledger explains every row and every counter."""
    common = {"LAB_OPS": "300", "LAB_MIX": "append=60,tokens=20,create=10,end=10"}
    gateway = subprocess.Popen([sys.executable, "-m", "repro.workload"], stdout=subprocess.PIPE, text=True,
                               env=workload_env(tmp_path, LAB_SEED="5", **common))
    cron_env = workload_env(tmp_path, LAB_SEED="6", LAB_ROLE="cron", LAB_OP_OFFSET="1000000000", **common)
    cron_env["LAB_STATUS_PATH"] = str(tmp_path / "status-cron")
    cron = subprocess.Popen([sys.executable, "-m", "repro.workload"], stdout=subprocess.PIPE, text=True, env=cron_env)
    out_gateway, _ = gateway.communicate(timeout=120)
    out_cron, _ = cron.communicate(timeout=120)
    assert gateway.returncode == 0 and cron.returncode == 0, (out_gateway[-500:], out_cron[-500:])
    assert out_gateway.count("READY ") == 1 and "READY " not in out_cron  # one READY per ledger
    ledger = parse_lines(out_gateway.splitlines() + out_cron.splitlines())
    assert len(ledger.operations) == 600
    writers = {op.index >= 1_000_000_000 for op in ledger.operations}
    assert writers == {True, False}
    v = verify(ledger, tmp_path / "state.db")
    assert v.acked > 500 and v.lost_acked == 0 and v.phantom == 0 and not v.mismatches, v.problems()
    # and a row the cron writer wrote is a phantom to the gateway's ledger alone: the merge matters
    assert verify(parse_lines(out_gateway.splitlines()), tmp_path / "state.db").phantom > 0


def test_the_mix_names_each_operation_by_its_own_name_and_still_reads_the_short_words() -> None:
    """--mix append_message=80 is the operation's name; append=80 (earlier labs) reads as the same mix."""
    from repro.ledger import OpKind
    from repro.workload.spec import DEFAULT_MIX, OPS, parse_mix

    assert OPS == tuple(kind.value for kind in OpKind)
    assert parse_mix("append=80,tokens=8,search=6,create=3,end=3") == parse_mix(DEFAULT_MIX)
    assert parse_mix("append=5,update_token_counts=2") == (("append_message", 5), ("update_token_counts", 2))
    assert [name for name, _ in parse_mix(DEFAULT_MIX)] == ["append_message", "update_token_counts",
                                                            "search_messages", "create_session", "end_session"]


def test_every_workload_setting_travels_under_its_own_name_and_comes_back_equal() -> None:
    """One object end to end: the options' fields are the spec's, the spec's are the machine config's, and
    each reaches the machine as LAB_<FIELD> and reads back equal (no field left at its default here)."""
    import dataclasses

    from repro.options import WorkloadOptions
    from repro.workload.config import WorkloadConfigError, env_name
    from repro.workload.spec import Hazard, WorkloadSpec

    spec_fields = {f.name for f in dataclasses.fields(WorkloadSpec)}
    assert {f.name for f in dataclasses.fields(WorkloadOptions)} <= spec_fields
    spec = WorkloadOptions(rate=2.5, mix="append=7,search=1", sizes="1k:2k").spec(
        (Hazard.parse("raw-open=3"), Hazard.parse("cron=40")), 900)
    cfg = WorkloadConfig.of(spec, seed=4, ops=12, db_path="/d/x.db", store_mount="/s", status_path="/run/st",
                            ledger_file="/l", hold=True, role="cron", op_offset=5, mark_socket="/m", reopen=True)
    unchanged = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) == f.default]
    assert not unchanged, unchanged
    assert all(getattr(cfg, name) == getattr(spec, name) for name in spec_fields)
    env = cfg.to_env()
    assert env["LAB_LINGER_MS"] == "900" and env["LAB_SIZES"] == "1k:2k" and env[env_name("ops")] == "12"
    assert WorkloadConfig.from_env(env) == cfg
    assert cfg.raw_open_every == 3 and cfg.size_range() == (1024, 2048)
    for bad in ({"LAB_HAZARDS": "raw-open=x"}, {"LAB_SIZES": "9:1"}, {"LAB_OPS": "many"}, {"LAB_ROLE": "boss"},
                {"LAB_MIX": "search=1"}):
        with pytest.raises(WorkloadConfigError):
            WorkloadConfig.from_env(bad)
