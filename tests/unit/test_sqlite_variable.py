"""SQLite as a trial variable without Docker: the in-force check, the CLI, the hunt, the reports, the checkpointer."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

import repro.sqlite as lab_sqlite
from framing import framed

from repro import commands
from repro.cli import main, parse
from repro.options import RunOptions
from repro.errors import ExitCode
from repro.oracle.verdicts import Verdict
from repro.protocol import EventKind, Tag, format_line, parse_line
from repro.report.records import TrialRecord
from repro.report.comparison import comparison_of
from repro.report.junit import junit_element
from repro.report.markdown import render_markdown
from repro.report.terminal import render_table
from repro.scenario import Scenario, StoreSpec, trial_seed
from repro.sqlite import build, runtime
from repro.sqlite.sources import SqliteVersionError
from repro.workload.checkpointer import checkpoint_count
from test_cli import one_error_line
from test_report import rec, run_of

REPO = pathlib.Path(__file__).resolve().parents[2]
B3532 = build.SqliteBuild("3.53.2", pathlib.Path("/x"), "better-sqlite3@12.11.1", (), False, "2026-06-03 19:12:13 d6e0")
DEBIAN = ("3.40.1", "2022-12-28 14:03:47 df5c253c0b3dd24916e4ec7cf77d3db5294cc9fd45ae7b9c5e82ad8197f3alt1")


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setenv("HERMES_LAB_CACHE", str(tmp_path / "cache"))  # never the real build cache


# -- what is in force -------------------------------------------------------------------


def _machine_lines(version: str, source_id: str, checkpointer: tuple[str, str] | None = None) -> list[str]:
    ids = {"sqlite_version": version, "sqlite_source_id": source_id}
    other = dict(zip(("sqlite_version", "sqlite_source_id"), checkpointer)) if checkpointer else ids
    return framed(["LAB BOOT {}", format_line(Tag.READY, {"journal_mode": "wal", **ids}),
            format_line(Tag.LEDGER, {"i": 1, "t": "invoke", "op": "create_session", "args": {}}),
            format_line(Tag.EVENT, {"kind": EventKind.WRITER_READY.value, "role": "cron", **ids}),
            format_line(Tag.EVENT, {"kind": EventKind.DASHBOARD_STARTED.value, "every_ms": 20, **ids}),
            format_line(Tag.EVENT, {"kind": EventKind.CHECKPOINTER_STARTED.value, **other})])


def test_every_process_of_a_machine_reports_its_library() -> None:
    seen = runtime.machine_reports(_machine_lines("3.53.2", B3532.source_id))
    assert sorted(seen) == ["checkpointer", "cron writer", "dashboard", "workload"]
    assert set(seen.values()) == {("3.53.2", B3532.source_id)}
    runtime.check_in_force(B3532, {**seen, "verifier": ("3.53.2", B3532.source_id)})  # all as asked: no error


@pytest.mark.parametrize(("build_", "reports", "match"), [
    (B3532, {"workload": DEBIAN}, "asked for SQLite 3.53.2 .* but the workload ran 3.40.1"),
    (B3532, {"workload": ("3.53.2", B3532.source_id), "verifier": ("3.53.2", "another build of 3.53.2")},
     "the verifier ran 3.53.2"),  # same version, another library: the source id tells
    (B3532, {}, "no process"),
    (B3532, {"workload": ("3.53.2", "")}, "did not report"),
    (None, {"workload": DEBIAN, "verifier": ("3.53.2", B3532.source_id)}, "different libraries"),
])
def test_a_library_other_than_the_one_asked_for_is_refused(build_: build.SqliteBuild | None,
                                                           reports: dict[str, tuple[str, str]], match: str) -> None:
    with pytest.raises(runtime.SqliteLoadError, match=match):
        runtime.check_in_force(build_, reports)


def test_the_system_library_is_whatever_the_image_has_in_every_process() -> None:
    seen = runtime.machine_reports(_machine_lines(*DEBIAN))
    runtime.check_in_force(None, {**seen, "verifier": DEBIAN})
    mixed = runtime.machine_reports(_machine_lines(*DEBIAN, checkpointer=("3.53.2", B3532.source_id)))
    with pytest.raises(runtime.SqliteLoadError, match="checkpointer 3.53.2"):
        runtime.check_in_force(None, mixed)


def test_preparation_takes_a_version_or_a_build_and_the_store_spec_names_it(tmp_path: pathlib.Path) -> None:
    store, b = lab_sqlite.for_store(StoreSpec("legacy"), B3532)
    assert b is B3532 and (store.sqlite, store.sqlite_assisted, store.preset) == ("3.53.2", False, "legacy")
    assisted = dataclasses.replace(B3532, assisted=True)
    assert lab_sqlite.for_store(StoreSpec(), assisted)[0].sqlite_label == "3.53.2-assisted"
    assert lab_sqlite.for_store(StoreSpec(sqlite="3.51.2"), "system") == (StoreSpec(), None)
    with pytest.raises(SqliteVersionError):
        lab_sqlite.for_store(StoreSpec(), "3.x")


def test_a_machine_takes_a_resolved_build_and_never_resolves_one_itself(tmp_path: pathlib.Path) -> None:
    """Preparation resolves the SQLite (repro.sqlite.for_store); the machine only mounts what it is given,
    and a version it would have to look up is a lab error, not a silent fall-back to the system library."""
    from repro.errors import LabError
    from repro.machine.container import ConstrainedHost, machine_store
    from repro.machine.inputs import InputKind, code_inputs, library_environment

    store = machine_store(StoreSpec("legacy"), B3532)
    assert (store.sqlite, store.sqlite_assisted, store.preset) == ("3.53.2", False, "legacy")
    assert machine_store(StoreSpec("legacy"), None) == StoreSpec("legacy")
    assert library_environment(B3532) == {"LD_LIBRARY_PATH": runtime.MACHINE_LIB_DIR}
    assert library_environment(None) == {} and runtime.environment(None) == {}
    assert code_inputs(None, B3532.lib_dir)[0].kind is InputKind.SQLITE
    with pytest.raises(LabError, match="unresolved"):
        ConstrainedHost("fly-256", store=StoreSpec(sqlite="3.53.2"))  # refused before any engine is asked


# -- the CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "words"), [
    (["run", "--sqlite", "latest"], ("'latest'", "system")),
    (["run", "--sqlite-assisted"], ("assisted", "version")),
    (["run", "--wal-autocheckpoint", "-3"], ("--wal-autocheckpoint",)),
    (["matrix", "--sqlites", " , "], ("--sqlites", "nothing")),
    (["matrix", "--sqlites", "3.53.2,3.53.2"], ("share the id",)),
    (["hunt", "--duration", "0"], ("--duration",)),
    (["hunt", "--sqlite-assisted"], ("assisted", "version")),  # the hunt's default list holds system
])
def test_bad_sqlite_input_is_one_line_and_exit_2(argv: list[str], words: tuple[str, ...],
                                                 capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    assert main(argv) == ExitCode.BAD_INPUT
    line = one_error_line(capsys)
    for word in words:
        assert word in line
    assert [p.name for p in tmp_path.iterdir()] == []


def test_every_version_is_built_before_the_engine_is_asked_for_anything(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    from repro.machine import engine

    asked: list[tuple[str, bool]] = []

    def resolve(version: str, *, assisted: bool = False) -> build.SqliteBuild:
        asked.append((version, assisted))
        if version == "3.99.0":
            raise SqliteVersionError("no better-sqlite3 release on the registry ships SQLite 3.99.0")
        return dataclasses.replace(B3532, version=version, assisted=assisted)

    def no_engine() -> None:
        raise AssertionError("the engine was asked for before every SQLite was built")

    loaded: list[str] = []
    monkeypatch.setattr(lab_sqlite, "resolve", resolve)
    monkeypatch.setattr(lab_sqlite.runtime, "probe", lambda b: loaded.append(b.label))  # each build is loaded once here
    monkeypatch.setattr(engine, "client", no_engine)
    assert main(["matrix", "--faults", "sigkill", "--sqlites", "3.51.2,system,3.99.0"]) == 2
    assert asked == [("3.51.2", False), ("3.99.0", False)] and loaded == ["3.51.2"]  # system is never built
    assert "3.99.0" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []  # no report directory either


def _args(argv: list[str]) -> RunOptions:
    options = parse(argv)
    assert isinstance(options, RunOptions)
    return options


def test_the_hunt_gives_the_wal_reset_bug_its_conditions_on_each_sqlite() -> None:
    scenarios = commands._scenarios(_args(["hunt", "--trials", "2", "--duration", "45"]), seed=7, build=False)
    assert len(scenarios) == 6
    assert [s.store.sqlite for s in scenarios[::2]] == ["system", "3.51.2", "3.53.2"]
    for s in scenarios:
        assert s.profile.name == "fly-1g" and s.fault_label == "sigkill-machine@random=45000"
        assert s.schedule()[0].after_ms == 45_000  # the machine is killed after the duration, not at a seeded moment
        assert s.workload.hazard_labels == ("cron=1", "checkpointer")
        assert s.store.wal_autocheckpoint == 8 and s.store.environment()["HERMES_STATE_WAL_AUTOCHECKPOINT"] == "8"
        assert s.workload.sizes == "100:1k" and s.workload.rate == 0  # flat out
    assert scenarios[-1].trial_id.endswith("ns506_wac=8_sqlite=3.53.2.hz=cron=1+checkpointer.2")
    assisted = commands._scenarios(_args(["hunt", "--sqlites", "3.51.2,3.53.2", "--sqlite-assisted"]), seed=7,
                                   build=False)
    assert {s.store.sqlite_label for s in assisted} == {"3.51.2-assisted", "3.53.2-assisted"}
    assert all("sqlite=3.5" in s.trial_id and s.trial_id.count("-assisted") == 1 for s in assisted)


def test_the_hunt_is_the_matrix_line_the_readme_gives() -> None:
    hunt = commands._scenarios(_args(["hunt", "--trials", "3", "--duration", "60"]), seed=9, build=False)
    matrix = commands._scenarios(_args(
        "matrix --profiles fly-1g --faults sigkill-machine@random=60000 --hazard cron=1 --hazard checkpointer=1 "
        "--wal-autocheckpoint 8 --message-size 100:1k --sqlites system,3.51.2,3.53.2 --trials 3".split()), seed=9,
        build=False)
    assert hunt == [s for s in matrix if s.fault_label != "clean-stop"]  # a hunt runs no control: 60 s of nothing each


@pytest.mark.parametrize("assisted", [[], ["--sqlite-assisted"]])
def test_trial_n_runs_the_same_seeds_on_every_sqlite(assisted: list[str]) -> None:
    """Same store, same faults, same seeds: only the library differs between the sides."""
    versions = "3.51.2,3.53.2" if assisted else "system,3.51.2,3.53.2"
    scenarios = commands._scenarios(_args(["matrix", "--faults", "sigkill@random,oom", "--sqlites", versions,
                                           "--trials", "2", *assisted]), seed=5, build=False)
    scenarios = [s for s in scenarios if s.fault_label != "clean-stop"]  # each store's control: checked elsewhere
    groups: dict[tuple[str, str], list[Scenario]] = {}
    for s in scenarios:
        groups.setdefault((s.fault_label, s.trial_id.rsplit(".", 1)[1]), []).append(s)
    assert len(groups) == 4
    for group in groups.values():
        assert len({s.trial_id for s in group}) == len(versions.split(","))  # told apart in every report
        assert len({s.seed_id for s in group}) == 1
        assert len({trial_seed(s.seed, s.seed_id) for s in group}) == 1 and len({s.schedule() for s in group}) == 1
    system = [s for s in scenarios if s.store.sqlite == "system"]
    assert all(s.seed_id == s.trial_id for s in system)  # the seeds a system trial always had


def test_run_and_matrix_carry_the_sqlite_into_each_store() -> None:
    (one,) = commands._scenarios(_args(["run", "--fault", "sigkill", "--trials", "1", "--sqlite", "3.53.2"]), 1,
                                 build=False)
    assert one.store.sqlite == "3.53.2" and not one.store.sqlite_assisted and one.store.wal_autocheckpoint is None
    both = commands._scenarios(_args(["matrix", "--faults", "sigkill", "--trials", "1", "--sqlites",
                                      "3.51.2,3.53.2", "--wal-autocheckpoint", "4"]), 1, build=False)
    assert [(s.store.sqlite, s.store.wal_autocheckpoint) for s in both] == [("3.51.2", 4), ("3.53.2", 4)] * 2
    assert [s.fault_label for s in both] == ["sigkill", "sigkill", "clean-stop", "clean-stop"]  # each store's control


# -- reports ------------------------------------------------------------------------------


def _on(record: TrialRecord, asked: str, version: str, number: int) -> TrialRecord:
    return dataclasses.replace(record, id=f"t-{asked}-{number}", sqlite=asked, sqlite_version=version,
                               sqlite_source_id=f"id of {version}", checkpoints=1000 + number)


OLD_NEW = [_on(rec(n, Verdict.CORRUPT, expected=False), "3.51.2-assisted", "3.51.2", n) for n in range(8)] + \
          [_on(rec(n, Verdict.PASS), "3.53.2-assisted", "3.53.2", n) for n in range(8)]


def test_two_sqlite_versions_are_two_sides_of_the_comparison() -> None:
    comparison = comparison_of(OLD_NEW)
    assert comparison is not None
    assert (comparison.old_label, comparison.new_label) == ("ns506 sqlite=3.51.2-assisted",
                                                            "ns506 sqlite=3.53.2-assisted")
    assert comparison.rows[0].change == "better"  # 8 of 8 against 0 of 8: not chance
    same = [dataclasses.replace(r, sqlite="system", sqlite_version="3.40.1") for r in OLD_NEW]
    assert comparison_of(same) is None  # one side only


def test_the_table_markdown_json_and_junit_name_the_sqlite_and_assisted() -> None:
    records = OLD_NEW[:1] + OLD_NEW[8:9] + [dataclasses.replace(rec(3, Verdict.PASS), sqlite_version="3.40.1")]
    console = Console(record=True, width=250)
    console.print(render_table(records))
    table = console.export_text()
    assert "3.51.2 assisted" in table and "3.53.2 assisted" in table and "3.40.1 (system)" in table
    md = render_markdown(run_of(*records))
    assert "3.51.2 assisted" in md and "3.53.2 assisted" in md and "3.40.1 (system)" in md
    assert "store ns506 sqlite=3.51.2-assisted, in force wal/normal 3.51.2 assisted" in md  # the failing trial
    again = TrialRecord.from_json(records[0].to_json())
    assert again == records[0] and (again.sqlite, again.sqlite_source_id, again.checkpoints) == (
        "3.51.2-assisted", "id of 3.51.2", 1000)
    cases = {c.get("name"): c for c in junit_element(run_of(*records)).iter("testcase")}
    assert "sqlite=3_51_2-assisted" in cases["t-3.51.2-assisted-0"].get("classname", "")
    assert cases["t-3.51.2-assisted-0"].get("classname") != cases["t-3.53.2-assisted-0"].get("classname")
    out = ET.tostring(cases["t-3.53.2-assisted-0"], encoding="unicode")
    assert "3.53.2 assisted" in out


# -- listing and doctor -----------------------------------------------------------------


def test_sqlite_list_shows_what_is_indexed_and_what_is_built(tmp_path: pathlib.Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    for name, assisted, seconds in (("3.51.2-aaa", False, 48.7), ("3.51.2-aaa-assisted", True, 51.0),
                                    ("3.47.0-aaa", False, 33.3)):
        d = tmp_path / "cache" / "sqlite" / name
        d.mkdir(parents=True)
        (d / build.LIB_NAME).write_bytes(b"lib")
        meta = build.BuildMetadata(name.split("-")[0], "better-sqlite3@11.0.0", "sha", "id", (), (), assisted,
                                   1000 if assisted else None, seconds, "gcc")
        (d / build.META_NAME).write_text(meta.to_json())
    assert main(["sqlite", "list"]) == ExitCode.OK
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert "plain, built in 48.7 s" in rows["3.51.2"] and "assisted (1000 us in each checkpoint)" in rows["3.51.2"]
    assert "better-sqlite3@12.6.2" in rows["3.51.2"]  # the index's source
    assert "better-sqlite3@11.0.0" in rows["3.47.0"] and "33.3 s" in rows["3.47.0"]  # built, not indexed
    assert "not built" in rows["3.53.2"] and "not built" in rows["3.40.1"]


@pytest.mark.parametrize(("version", "warns"), [("3.40.1", True), ("3.51.2", True), ("3.51.3", False),
                                                ("3.50.7", False), ("3.53.2", False)])
def test_doctor_warns_about_the_wal_reset_bug_only_inside_its_range(monkeypatch: pytest.MonkeyPatch,
                                                                  version: str, warns: bool) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version", version)  # no image to ask: the host's library
    name, ok, detail, required = runtime.system_check(None, "hermes-lab:test")
    assert name == "sqlite" and not required and ok is not warns
    assert detail.startswith(f"{version}, this host's library")
    assert ("inside the WAL-reset bug's range" in detail) is warns


# -- the checkpointer ---------------------------------------------------------------------


def test_the_checkpointer_checkpoints_a_live_wal_database_and_counts(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "state.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("pragma journal_mode=wal")
    writer.execute("create table t(x)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LAB_DB_PATH": str(db), "LAB_CHECKPOINT_EVERY_MS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "repro.workload.checkpointer"], env=env, stdout=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            writer.execute("insert into t values (randomblob(3000))")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    lines = out.splitlines()
    assert proc.returncode == 0, out
    started = dict(parse_line(lines[0]).payload)  # type: ignore[union-attr]
    assert started["kind"] == "checkpointer-started" and started["sqlite_version"] == sqlite3.sqlite_version
    last = dict(parse_line(lines[-1]).payload)  # type: ignore[union-attr]
    assert last["kind"] == "checkpoints" and last["checkpoints"] == checkpoint_count(lines) > 10
    assert last["passive"] + last["truncate"] == last["checkpoints"] and abs(last["passive"] - last["truncate"]) <= 1
    assert last["complete"] > 0 and last["errors"] == 0
    assert len([l for l in lines if '"checkpoints"' in l]) >= 2  # a running count, not only a last line
    assert writer.execute("select count(*) from t").fetchone()[0] > 0
    assert checkpoint_count(["LAB BOOT {}"]) == 0


# -- the hunt's long wait -----------------------------------------------------------------


def test_a_long_wait_keeps_the_exec_alive_and_fires_on_the_clock_alone(tmp_path: pathlib.Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`docker exec` output through a client with a 60 s read timeout: a 60 s wait must print now and
    then. And `@random=MS` fires on the clock even if the store acknowledged nothing (it broke)."""
    from repro.scenario import FaultSpec, get_profile
    from repro.workload import agent
    from repro.workload.status import StatusBoard

    (step,) = Scenario(get_profile("fly-1g"), (FaultSpec.parse("sigkill-machine@random=1200"),)).schedule()
    assert (step.after_ms, step.after_acks) == (1200, 0)
    StatusBoard(str(tmp_path / "status"), create=True).close()  # no acks at all
    monkeypatch.setattr(agent, "HEARTBEAT_S", 0.3)
    started = time.monotonic()
    assert agent.main(["--action", "none", "--after-acks", str(step.after_acks), "--after-ms", str(step.after_ms),
                       "--status", str(tmp_path / "status"), "--timeout", "10"]) == 0
    assert time.monotonic() - started >= 1.2
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("agent waiting")]) >= 3
    assert '"fired":true' in out[-1]
