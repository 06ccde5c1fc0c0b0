"""Trials on a chosen SQLite: the library asked for is the one in force in the machine and in the verifier.

Needs the Docker engine, and -- for the built versions -- gcc and the npm registry on the host
(the build cache makes every use after the first take a millisecond).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import repro.sqlite as lab_sqlite
from repro.machine import engine
from repro.machine.labels import RUN_LABEL
from repro.pipeline import run_trial
from repro.scenario import FaultSpec, Hazard, Scenario, StoreSpec, WorkloadSpec, get_profile, trial_id
from repro.sqlite import runtime
from repro.sqlite.sources import SqliteSourceError
from repro.testing import ConstrainedHost, verify

pytestmark = pytest.mark.docker
DEBIAN_SQLITE = "3.40.1"  # bookworm's libsqlite3, the image's `system` library
EVERY_PROCESS = WorkloadSpec(hazards=(Hazard.parse("dashboard"), Hazard.parse("cron=5"), Hazard.parse("checkpointer")))


@pytest.fixture(scope="session")
def build_3532() -> lab_sqlite.SqliteBuild:
    if shutil.which("gcc") is None and not os.environ.get("CI"):
        pytest.skip("no gcc on this host")
    try:
        built = lab_sqlite.resolve("3.53.2")  # the lab's own cache: a hit after the first build
    except SqliteSourceError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the npm registry is not reachable: {exc}")
    assert built is not None
    return built


@pytest.mark.parametrize("asked", ["system", "3.53.2"])
def test_a_trial_records_the_sqlite_in_force_in_every_process_and_the_verifier(
        asked: str, lab_image: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> None:
    """The workload, the cron writer, the dashboard and the checkpointer report the library they
    loaded (the pipeline refuses a mismatch as a lab error), and so does the restarted machine's probe."""
    build = request.getfixturevalue("build_3532") if asked != "system" else None
    store = StoreSpec(sqlite=asked)
    proto = Scenario(get_profile("fly-256"), (FaultSpec.parse("sigkill-machine@acks=400"),), store, 11,
                     workload=EVERY_PROCESS)
    record = run_trial(dataclasses.replace(proto, trial_id=trial_id(proto, 1)), out_dir=tmp_path, image=lab_image)
    assert record.verdict.value == "pass", record.detail  # an `error` here would name the library mismatch
    assert record.sqlite == asked
    assert record.sqlite_version == (DEBIAN_SQLITE if build is None else "3.53.2")
    if build is not None:
        assert record.sqlite_source_id == build.source_id and "sqlite=3.53.2" in record.id
    else:
        assert record.sqlite_source_id.startswith("2022-12-28") and "sqlite" not in record.id


@pytest.mark.parametrize("asked", ["system", "3.53.2"])
def test_the_testcontainers_api_runs_the_store_and_the_verifier_on_the_library_asked_for(
        asked: str, lab_image: str, request: pytest.FixtureRequest) -> None:
    sqlite: lab_sqlite.SqliteBuild | None = request.getfixturevalue("build_3532") if asked != "system" else None
    with ConstrainedHost("fly-256", image=lab_image, sqlite=sqlite) as machine:
        ready = machine.start_workload(seed=3)
        machine.wait_for_acks(100)
        result = verify(machine)
    expected = DEBIAN_SQLITE if asked == "system" else "3.53.2"
    assert (ready["sqlite_version"], result.facts.sqlite_version) == (expected, expected)
    assert ready["sqlite_source_id"] == result.facts.sqlite_source_id
    assert result.verdict == "pass"


def test_a_machine_running_another_library_than_asked_is_caught(build_3532: lab_sqlite.SqliteBuild,
                                                               lab_image: str) -> None:
    """The known-bad case of the in-force check, in a real machine: the mounted library is 3.53.2,
    the request (a build record that lies) says 3.51.2."""
    liar = dataclasses.replace(build_3532, version="3.51.2", source_id="2026-01-09 not what is mounted")
    with ConstrainedHost("fly-256", image=lab_image, sqlite=liar) as machine:
        machine.start_workload(seed=5, hazards=(Hazard.parse("dashboard=20"),))
        seen = runtime.machine_reports(machine.lines())
        assert seen["workload"] == seen["dashboard"] == ("3.53.2", build_3532.source_id)
        with pytest.raises(runtime.SqliteLoadError, match="asked for SQLite 3.51.2 .* ran 3.53.2"):
            runtime.check_in_force(machine.sqlite, seen)


def test_an_unknown_version_is_one_line_exit_2_and_starts_nothing(lab_image: str, tmp_path: pathlib.Path) -> None:
    run_id = f"badsqlite-{os.getpid()}"
    cli = engine.client()
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    proc = subprocess.run([str(pathlib.Path(sys.executable).with_name("repro")), "run", "--sqlite", "3.99.0", "--fault", "sigkill",
                           "--trials", "1", "--out", str(tmp_path / "r")],
                          env={**os.environ, "HERMES_LAB_RUN_ID": run_id}, capture_output=True, text=True, timeout=600)
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    if "cannot fetch" in proc.stderr and not os.environ.get("CI"):
        pytest.skip(f"the npm registry is not reachable: {proc.stderr.strip()}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["repro: error: no better-sqlite3 release on the registry ships "
                                                "SQLite 3.99.0"]
    events = list(cli.events(since=since, until=until, decode=True,
                             filters={"label": f"{RUN_LABEL}={run_id}"}))
    assert events == []  # not one container or volume of this run was ever created
    assert engine.leftovers(cli, run_id) == ([], [])
    assert not (tmp_path / "r").exists()


def test_a_starting_database_is_grown_on_the_sqlite_the_trials_load(build_3532: lab_sqlite.SqliteBuild,
                                                                     lab_image: str, tmp_path: pathlib.Path) -> None:
    """--initial-size with --sqlite: the grower loads the build (sent through the engine) and says so; the system
    library grows a cache entry of its own."""
    from repro.startdb.grow import grow_database

    built, grown = grow_database(2 << 20, 4, StoreSpec(sqlite="3.53.2"), image=lab_image, cache=tmp_path)
    assert grown and "on SQLite 3.53.2 " in built.made and built.bytes >= 2 << 20, built
    system, grown = grow_database(2 << 20, 4, StoreSpec(), image=lab_image, cache=tmp_path)
    assert grown and f"on SQLite {DEBIAN_SQLITE} " in system.made and system.directory != built.directory
