"""Scenarios: faults parse, bad combinations are refused up front, and a seed replays the same schedule."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import pathlib
import subprocess
import sys

import pytest

from repro.errors import ScenarioError
from repro.scenario import (
    DEFAULT_PROFILE,
    FaultName,
    FaultSpec,
    Hazard,
    HazardName,
    MachineProfile,
    Scenario,
    StartSpec,
    StoreSpec,
    Trigger,
    WorkloadSpec,
    default_trigger,
    expand,
    get_profile,
    scenario_from_dict,
    scenario_to_dict,
)
from repro.scenario.replay import _ADDED

FLY256 = get_profile("fly-256")


def scenario(*faults: str, seed: int = 0, trial_id: str = "t0") -> Scenario:
    return Scenario(FLY256, tuple(FaultSpec.parse(f) for f in faults), seed=seed, trial_id=trial_id)


@pytest.mark.parametrize(
    ("text", "name", "trigger", "value"),
    [
        ("sigkill", FaultName.SIGKILL, None, None),
        ("sigterm@acks=200", FaultName.SIGTERM, Trigger.ACKS, 200),
        ("oom@random", FaultName.OOM, Trigger.RANDOM, None),
        ("sigkill@in-write", FaultName.SIGKILL, Trigger.IN_WRITE, None),
        ("disk-fill", FaultName.DISK_FILL, None, None),
    ],
)
def test_fault_spec_parses(text: str, name: FaultName, trigger: Trigger | None, value: int | None) -> None:
    spec = FaultSpec.parse(text)
    assert (spec.name, spec.trigger, spec.value) == (name, trigger, value)
    assert str(spec) == text  # the label a report and a replay use


@pytest.mark.parametrize(
    "text",
    ["nope", "SIGKILL", "sigkil", "sigkill@later", "sigterm@acks=many", "sigterm@acks=-1", "sigterm@acks=²", "@acks=3"],
)
def test_fault_spec_rejects(text: str) -> None:
    with pytest.raises(ScenarioError):
        FaultSpec.parse(text)


def test_unknown_fault_names_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match="sigkill.*disk-fill"):
        FaultSpec.parse("nope")


def test_disk_fill_may_precede_the_machine_ending_fault() -> None:
    s = scenario("disk-fill", "sigterm")
    assert s.fault_label == "disk-fill+sigterm"
    assert [step.name for step in s.schedule()] == [FaultName.DISK_FILL, FaultName.SIGTERM]


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        (("sigterm", "disk-fill"), "must come last"),
        (("sigkill", "oom"), "at most one"),
        (("disk-fill", "disk-fill", "sigterm"), "only once"),
        ((), "at least one"),
    ],
)
def test_scenario_refuses_bad_combinations(faults: tuple[str, ...], match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        scenario(*faults)


def test_schedule_is_deterministic_and_depends_on_seed_and_trial() -> None:
    def sched(seed: int, trial_id: str) -> tuple[object, ...]:
        return scenario("disk-fill", "sigkill", seed=seed, trial_id=trial_id).schedule()

    first = sched(7, "t1")
    assert sched(7, "t1") == first
    # over a handful of seeds and trials the schedules are not all the same
    assert len({sched(seed, "t1") for seed in range(8)}) > 1
    assert len({sched(7, f"t{n}") for n in range(8)}) > 1


def test_schedule_resolves_triggers() -> None:
    kill, = scenario("sigkill@in-write", seed=3).schedule()  # in a write, after seeded acks, seeded delay
    assert kill.trigger is Trigger.IN_WRITE and 40 <= kill.after_acks <= 400 and 0 <= kill.delay_us <= 400
    default, = scenario("sigkill", seed=3).schedule()
    assert default.trigger is not None and default.after_acks > 0  # every trigger is resolved
    term, = scenario("sigterm@acks=200", seed=3).schedule()
    assert (term.trigger, term.after_acks, term.after_ms, term.delay_us) == (Trigger.ACKS, 200, 0, 0)
    oom, = scenario("oom@random=900", seed=3).schedule()
    assert (oom.trigger, oom.after_ms, oom.after_acks) == (Trigger.RANDOM, 900, 0)  # the clock alone
    seeded, = scenario("oom@random", seed=3).schedule()
    assert 200 <= seeded.after_ms <= 2000 and 40 <= seeded.after_acks <= 400  # a seeded moment, after some work
    fill, term2 = scenario("disk-fill", "sigterm", seed=3).schedule()
    assert fill.after_acks > 0 and term2.after_acks == 0  # the second fires relative to the full disk


def test_replay_in_another_process_gives_the_same_schedule() -> None:
    """A replay is a new interpreter (another hash seed): the schedule must not depend on it."""
    code = (
        "import json, sys\n"
        "from repro.scenario import FaultSpec, Scenario, get_profile\n"
        "s = Scenario(get_profile('fly-256'), (FaultSpec.parse('disk-fill'), FaultSpec.parse('sigkill')),"
        " seed=11, trial_id='t3')\n"
        "print(json.dumps([[st.name.value, st.trigger.value, st.after_acks, st.after_ms, st.delay_us]"
        " for st in s.schedule()]))\n"
    )
    here = scenario("disk-fill", "sigkill", seed=11, trial_id="t3").schedule()
    expected = [[st.name.value, st.trigger.value, st.after_acks, st.after_ms, st.delay_us] for st in here]
    for hash_seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert json.loads(out.stdout) == expected


def test_store_spec_environment() -> None:
    assert StoreSpec().environment() == {"HERMES_STATE_PRESET": "ns506"}
    spec = StoreSpec("durable", journal_mode="WAL", synchronous="Full")
    assert spec.environment() == {"HERMES_STATE_PRESET": "durable", "HERMES_STATE_JOURNAL_MODE": "wal",
                                  "HERMES_STATE_SYNCHRONOUS": "full"}
    assert spec.label == "durable,jm=wal,sync=full"



def test_the_sqlite_build_and_autocheckpoint_name_the_trial_and_reach_the_store() -> None:
    spec = StoreSpec(wal_autocheckpoint=8, sqlite="3.51.2", sqlite_assisted=True)
    assert spec.label == "ns506,wac=8,sqlite=3.51.2-assisted" and spec.sqlite_label == "3.51.2-assisted"
    assert spec.environment() == {"HERMES_STATE_PRESET": "ns506", "HERMES_STATE_WAL_AUTOCHECKPOINT": "8"}
    assert StoreSpec(sqlite="3.53.2").label == "ns506,sqlite=3.53.2"
    assert StoreSpec().label == "ns506" and StoreSpec().sqlite_label == "system"  # the default names nothing
    scenarios = expand(["fly-256"], [("sigkill",)], [StoreSpec(sqlite="3.51.2"), StoreSpec(sqlite="3.53.2")], 1, 7)
    assert [s.trial_id for s in scenarios] == ["fly-256.sigkill.ns506_sqlite=3.51.2.1",
                                               "fly-256.sigkill.ns506_sqlite=3.53.2.1"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preset": "fast"}, "unknown preset"),
        ({"journal_mode": "wall"}, "unknown journal mode"),
        ({"synchronous": "2"}, "unknown synchronous"),
        ({"sqlite": "latest"}, "not 'system' or a version"),
        ({"sqlite": "system", "sqlite_assisted": True}, "needs a version"),
        ({"wal_autocheckpoint": -1}, "number of pages"),
    ],
)
def test_store_spec_rejects(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        StoreSpec(**kwargs)  # type: ignore[arg-type]


def test_store_path_needs_a_hermes_state_package_or_module(tmp_path: pathlib.Path) -> None:
    """Preparation checks the directory (the scenario is data: it never looks at the filesystem)."""
    from repro.prepare import check_store_path

    assert StoreSpec(store_path=str(tmp_path / "missing")).foreign  # data only
    with pytest.raises(ScenarioError, match="no hermes_state package and no hermes_state.py module"):
        check_store_path(str(tmp_path))
    with pytest.raises(ScenarioError, match="not a directory"):
        check_store_path(str(tmp_path / "missing"))
    (tmp_path / "hermes_state.py").write_text("class SessionDB: pass\n")
    check_store_path(str(tmp_path))  # the module layout, as upstream ships it
    (tmp_path / "hermes_state").mkdir()
    with pytest.raises(ScenarioError, match="both a hermes_state package and a hermes_state.py module"):
        check_store_path(str(tmp_path))
    (tmp_path / "hermes_state.py").unlink()
    check_store_path(str(tmp_path))
    spec = StoreSpec(store_path=str(tmp_path))
    assert f"store={tmp_path.name}-" in spec.label
    assert spec.environment() == {"HERMES_STATE_PRESET": "ns506"}  # the path is mounted, not an env var


def _everything(tmp_path: pathlib.Path) -> Scenario:
    """A scenario with no field left at its default: a field the JSON form forgot cannot hide."""
    (tmp_path / "rel" / "hermes_state").mkdir(parents=True)
    store = StoreSpec("legacy", journal_mode="delete", synchronous="full", store_path=str(tmp_path / "rel"),
                      checkpoint_mode="truncate", store_ref="/repo@v1", store_commit="ab" * 20, requirements="auto",
                      image="hermes-lab-store:0123", wal_autocheckpoint=8, sqlite="3.51.2", sqlite_assisted=True)
    workload = WorkloadSpec(rate=12.5, mix="append=80,tokens=20", sizes="20k:200k",
                            hazards=(Hazard.parse("raw-open=5"), Hazard.parse("dashboard")), linger_ms=7000)
    faults = (FaultSpec.parse("disk-fill@acks=30"), FaultSpec.parse("power-loss:torn-writes,lazy-dirs@in-write=9"))
    profile = MachineProfile("odd", memory=300 << 20, cpus=0.5, pids_limit=99, disk=10 << 20, kill_signal="SIGTERM",
                             kill_timeout_s=30, network=True)
    (tmp_path / "state.db").write_bytes(b"")
    start = StartSpec(from_db=str(tmp_path / "state.db"), fill_pct=94, files=str(tmp_path / "cache"))
    scenario = Scenario(profile, faults, store, seed=99, trial_id="odd.x.7", workload=workload, start=start)
    fly256 = get_profile(DEFAULT_PROFILE)
    for spec, default in ((store, StoreSpec()), (workload, WorkloadSpec()), (profile, fly256),
                          (scenario, Scenario(fly256, (FaultSpec.parse("sigkill"),)))):
        for f in dataclasses.fields(spec):
            if (type(spec).__name__, f.name) == ("MachineProfile", "fs"):
                continue  # --fs takes power loss without options: its own scenario below (_on_a_kernel_filesystem)
            assert getattr(spec, f.name) != getattr(default, f.name), f"{type(spec).__name__}.{f.name} is a default"
    return scenario


def test_a_scenario_on_a_kernel_filesystem_survives_json_and_refuses_what_fs_does_not_model(
        tmp_path: pathlib.Path) -> None:
    from repro.scenario import with_fs

    profile = with_fs(get_profile(DEFAULT_PROFILE), "ext4:data=journal,nobarrier")
    assert (profile.fs, profile.name) == ("ext4:data=journal,nobarrier", "fly-256+ext4:data=journal+nobarrier")
    scenario = Scenario(profile, (FaultSpec.parse("power-loss@in-write=9"),), seed=4, trial_id="fs.1")
    data = json.loads(json.dumps(scenario_to_dict(scenario)))
    assert data["profile"]["fs"] == "ext4:data=journal,nobarrier" and scenario_from_dict(data) == scenario
    assert scenario.fuse and scenario.lazy_dirs  # a real filesystem keeps directory entries lazily
    old = {**data, "format": 3, "profile": {k: v for k, v in data["profile"].items() if k != "fs"}}
    assert scenario_from_dict(old).profile.fs is None  # an older scenario ran on the lab's own disk
    for faults, says in ((("sigkill",), "power-loss .*not sigkill"), (("power-loss:lazy-dirs",), "the kernel decides")):
        with pytest.raises(ScenarioError, match=says):
            Scenario(profile, tuple(FaultSpec.parse(f) for f in faults))
    with pytest.raises(ScenarioError, match="at least 300 MB"):
        with_fs(get_profile(DEFAULT_PROFILE), "xfs")


def test_a_scenario_survives_json_field_for_field(tmp_path: pathlib.Path) -> None:
    scenario = _everything(tmp_path)
    data = json.loads(json.dumps(scenario_to_dict(scenario)))
    again = scenario_from_dict(data)
    assert again == scenario and again.schedule() == scenario.schedule()
    assert data["faults"] == ["disk-fill@acks=30", "power-loss:lazy-dirs,torn-writes@in-write=9"]
    assert data["workload"]["hazards"] == ["raw-open=5", "dashboard=20"]  # the period, even the default one
    assert (data["store"]["sqlite"], data["store"]["sqlite_assisted"]) == ("3.51.2", True)  # replay: same library
    # A fault without a trigger stays without one: its default is resolved from the seed, as when it ran.
    plain = Scenario(get_profile(DEFAULT_PROFILE), (FaultSpec.parse("sigkill"),), seed=3, trial_id="t1")
    back = scenario_from_dict(scenario_to_dict(plain))
    assert back == plain and back.faults[0].trigger is None
    grown = dataclasses.replace(plain, start=StartSpec(initial_size=300 << 20))
    assert scenario_from_dict(json.loads(json.dumps(scenario_to_dict(grown)))) == grown
    older = scenario_to_dict(plain)  # a format-2 report: before starting databases and store refs
    del older["start"]
    for name in ("store_ref", "store_commit", "requirements", "image"):
        del older["store"][name]  # type: ignore[attr-defined]
    assert scenario_from_dict({**older, "format": 2}) == plain
    with pytest.raises(ScenarioError, match="lacks start"):
        scenario_from_dict(older)  # format 3 must carry them
    assert back.schedule()[0].trigger is default_trigger(FaultName.SIGKILL)


def test_a_format_1_scenario_replays_on_what_it_ran_with() -> None:
    """Reports made before SQLite was a variable stored no SQLite: they ran the system library."""
    plain = Scenario(get_profile(DEFAULT_PROFILE), (FaultSpec.parse("sigkill"),), seed=3, trial_id="t1")
    old = scenario_to_dict(plain)
    store = dict(old["store"])  # type: ignore[call-overload]
    for added in ("sqlite", "sqlite_assisted", "wal_autocheckpoint", "store_ref", "store_commit", "requirements",
                  "image"):
        del store[added]
    format_1 = {name: value for name, value in old.items() if name != "start"}
    assert scenario_from_dict({**format_1, "format": 1, "store": store}) == plain
    with pytest.raises(ScenarioError, match="lacks image, requirements, sqlite"):
        scenario_from_dict({**old, "store": store})  # format 3 must carry them
    # the values an older trial ran with are the defaults of today's fields
    defaults = dataclasses.asdict(StoreSpec())
    for added in (_ADDED[2]["store"], _ADDED[3]["store"]):
        assert added == {name: defaults[name] for name in added}
    assert _ADDED[3]["start"] == dataclasses.asdict(StartSpec())


def test_every_trial_of_a_matrix_replays_from_its_stored_scenario(tmp_path: pathlib.Path) -> None:
    """Replay rebuilds the trial from what ran, whatever its number (no re-expansion of the matrix)."""
    (tmp_path / "rel" / "hermes_state").mkdir(parents=True)
    hazards = (Hazard.parse("raw-open=5"), Hazard.parse("dashboard"))
    scenarios = expand(["fly-512"], [("disk-fill", "sigterm@acks=50")],
                       [StoreSpec("legacy", synchronous="full", store_path=str(tmp_path / "rel"),
                                  checkpoint_mode="truncate")], 7, seed=99,
                       workload=WorkloadSpec(hazards=hazards, linger_ms=7000))
    target = scenarios[-1]
    assert re.search(r"ckpt=truncate_store=rel-[0-9a-f]{6}\.hz=raw-open=5\+dashboard\.7$", target.trial_id)
    for scenario in scenarios:
        again = scenario_from_dict(json.loads(json.dumps(scenario_to_dict(scenario))))
        assert again == scenario and again.schedule() == scenario.schedule()


@pytest.mark.parametrize(("change", "match"), [
    ({"format": 0}, "another version of the lab"),
    ({"format": None}, "another version of the lab"),
    ({"seed": "7"}, "seed must be an integer"),
    ({"seed": True}, "seed must be an integer"),
    ({"trial_id": ""}, "trial_id"),
    ({"faults": ["sigkil"]}, "unknown fault"),
    ({"faults": "sigkill"}, "faults must be a list"),
    ({"faults": []}, "at least one fault"),
    ({"profile": {"name": "fly-256"}}, "scenario profile lacks"),
    ({"store": {"preset": "fast", "journal_mode": None, "synchronous": None, "store_path": None,
                "checkpoint_mode": None, "wal_autocheckpoint": None, "sqlite": "system", "sqlite_assisted": False}},
     "unknown preset"),
    ({"store": {"preset": "ns506", "journal_mode": 1, "synchronous": None, "store_path": None,
                "checkpoint_mode": None, "wal_autocheckpoint": None, "sqlite": "system", "sqlite_assisted": False}},
     "journal_mode must be"),
    ({"store": {"preset": "ns506", "journal_mode": None, "synchronous": None, "store_path": None,
                "checkpoint_mode": None, "wal_autocheckpoint": None, "sqlite": "3.x", "sqlite_assisted": False}},
     "not 'system' or a version"),
    ({"store": {"preset": "ns506", "journal_mode": None, "synchronous": None, "store_path": None,
                "checkpoint_mode": None, "wal_autocheckpoint": None, "sqlite": "system", "sqlite_assisted": True}},
     "assisted SQLite build needs a version"),
    ({"workload": {"rate": 0.0, "mix": "", "sizes": "", "hazards": ["chaos"], "linger_ms": 0}}, "unknown hazard"),
    ({"workload": {"rate": 0.0, "mix": "", "sizes": "", "hazards": [], "linger_ms": 0, "speed": 1}}, "unknown speed"),
    ({"extra": 1}, "unknown extra"),
])
def test_a_bad_stored_scenario_is_a_scenario_error(change: dict[str, object], match: str) -> None:
    good = scenario_to_dict(Scenario(get_profile(DEFAULT_PROFILE), (FaultSpec.parse("sigkill"),), trial_id="t1"))
    if "store" in change:  # the fields a case does not name, as written
        change = {**change, "store": {**good["store"], **change["store"]}}  # type: ignore[dict-item]
    with pytest.raises(ScenarioError, match=match):
        scenario_from_dict({**good, **change})
    bad_profile = {**good, "profile": {**good["profile"], "memory": True}}
    with pytest.raises(ScenarioError, match="memory must be int"):
        scenario_from_dict(bad_profile)


@pytest.mark.parametrize(("text", "name", "every"), [
    ("raw-open", HazardName.RAW_OPEN, 10), ("raw-open=3", HazardName.RAW_OPEN, 3),
    ("dashboard", HazardName.DASHBOARD, 20), ("dashboard=250", HazardName.DASHBOARD, 250),
    ("cron", HazardName.CRON, 20),
])
def test_hazards_parse(text: str, name: HazardName, every: int) -> None:
    hazard = Hazard.parse(text)
    assert (hazard.name, hazard.every) == (name, every)
    assert Hazard.parse(str(hazard)) == hazard


@pytest.mark.parametrize(("text", "match"), [("fsync-off", "unknown hazard"), ("raw-open=0", "positive"),
                                             ("dashboard=soon", "positive"), ("raw-open=", "positive")])
def test_bad_hazards_are_refused(text: str, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        Hazard.parse(text)


def test_a_hazard_appears_once() -> None:
    with pytest.raises(ScenarioError, match="only once"):
        WorkloadSpec(hazards=(Hazard.parse("dashboard"), Hazard.parse("dashboard=5")))


def test_checkpoint_mode_and_linger_reach_the_store_and_the_workload() -> None:
    store = StoreSpec("ns506", checkpoint_mode="truncate")
    assert store.environment()["HERMES_STATE_CHECKPOINT_MODE"] == "TRUNCATE" and "ckpt=truncate" in store.label
    with pytest.raises(ScenarioError, match="unknown checkpoint mode"):
        StoreSpec("ns506", checkpoint_mode="restart")
    with pytest.raises(ScenarioError, match="--linger"):
        WorkloadSpec(linger_ms=-1)


def test_the_main_job_covers_the_beta_faults_and_the_lock_bug() -> None:
    from repro.cli import parse
    from repro.commands import _scenarios

    scenarios = _scenarios(parse(["run"]), 1)
    labels = {(s.fault_label, s.workload.hazard_labels) for s in scenarios}
    for faults in ("sigint", "sigterm", "sigkill", "oom", "disk-fill", "disk-fill+sigterm"):
        assert (faults, ()) in labels
    assert ("sigkill", ("raw-open", "dashboard")) in labels
    assert len({s.trial_id for s in scenarios}) == len(scenarios)
    # asking for a fault (or a hazard) runs just that
    assert {s.workload.hazard_labels for s in _scenarios(parse(["run", "--fault", "oom"]), 1)} == {()}


def test_a_second_writer_cannot_be_judged_under_power_loss() -> None:
    cron = WorkloadSpec(hazards=(Hazard.parse("cron"),))
    with pytest.raises(ScenarioError, match="common commit order"):
        Scenario(get_profile("fly-256"), (FaultSpec.parse("power-loss"),), workload=cron)
    Scenario(get_profile("fly-256"), (FaultSpec.parse("sigkill"),), workload=cron)  # a process crash is fine


# (argv, trials, first id, last id, digest of every (trial id, run seed, trial seed, schedule)) as the lab expanded
# them before a git ref was resolved ahead of the expansion: pinned, so that change moved no id and no seed.
PINNED = [
    (["run", "--fault", "disk-fill", "--fault", "sigkill@checkpoint", "--trials", "3", "--hazard", "raw-open"], 3,
     "fly-256.disk-fill+sigkill_checkpoint.ns506.hz=raw-open.1", "fly-256.disk-fill+sigkill_checkpoint.ns506.hz=raw-open.3",
     "af35be77ca104052"),
    (["matrix", "--profiles", "fly-256,fly-512", "--faults", "sigkill,disk-fill+sigterm,power-loss:lazy-dirs",
      "--presets", "legacy,ns506", "--sqlites", "system,3.53.2", "--trials", "2", "--journal-mode", "delete"], 48,
     "fly-256.sigkill.legacy_jm=delete.1", "fly-512.power-loss_lazy-dirs.ns506_jm=delete_sqlite=3.53.2.2",
     "6f30b19206893b81"),
    (["hunt", "--trials", "2", "--duration", "45"], 6, "fly-1g.sigkill-machine_random=45000.ns506_wac=8.hz=cron=1+checkpointer.1",
     "fly-1g.sigkill-machine_random=45000.ns506_wac=8_sqlite=3.53.2.hz=cron=1+checkpointer.2", "2260895f8cb6b7b1"),
]


def _pinned(scenarios: list[Scenario]) -> tuple[int, str, str, str]:
    import hashlib
    import json

    from repro.scenario import trial_seed

    rows = [(s.trial_id, s.seed, trial_seed(s.seed, s.seed_id), [str(x) for x in s.schedule()]) for s in scenarios]
    return len(rows), rows[0][0], rows[-1][0], hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


@pytest.mark.parametrize(("argv", "trials", "first", "last", "digest"), PINNED)
def test_trial_ids_and_seeds_are_pinned(argv: list[str], trials: int, first: str, last: str, digest: str) -> None:
    from repro.cli import parse
    from repro.commands import _scenarios

    scenarios = _scenarios(parse(argv), 7, build=False)
    faulted = [s for s in scenarios if s.fault_label != "clean-stop"]  # a matrix's controls came later: ids unmoved
    assert _pinned(faulted) == (trials, first, last, digest)
    if argv[0] == "matrix":  # one control per (profile, store), --trials each, after the faults
        assert len(scenarios) - len(faulted) == 2 * 4 * 2
        assert [s.trial_id for s in scenarios if s.fault_label == "clean-stop"][0] == "fly-256.clean-stop.legacy_jm=delete.1"


def test_the_default_run_keeps_its_ids_and_seeds_with_the_lock_bug_last() -> None:
    from repro.cli import parse
    from repro.commands import _scenarios

    scenarios = [s for s in _scenarios(parse(["run", "--trials", "2"]), 7, build=False)
                 if s.faults[0].name is not FaultName.POWER_LOSS]  # power loss only where /dev/fuse is
    assert _pinned(scenarios)[0] == 14 and _pinned(scenarios)[3] == "af001242c2df1ea9"
    assert scenarios[-1].trial_id == "fly-256.sigkill.ns506.hz=raw-open+dashboard.2"


def test_a_ref_is_resolved_to_its_commit_before_the_matrix_is_expanded(tmp_path: pathlib.Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The ids name the commit from the one expansion; checking the ref out later changes no label."""
    import dataclasses

    from repro.scenario import expand
    from repro.source.prepare import resolve_refs
    from repro.source.refs import StoreRef, checkout
    from upstream_like import git_releases

    monkeypatch.setenv("HERMES_LAB_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "project"
    old, new = git_releases(repo, [("v1", {"release": "2026.6"}), ("v2", {"release": "2026.11"})])
    asked = [StoreSpec("own", store_ref=f"{repo}@v1"), StoreSpec("own", store_ref=f"{repo}@v2"),
             StoreSpec("ns506"), StoreSpec("legacy", store_ref=f"{repo}@v1")]
    stores = resolve_refs(asked)
    assert [s.store_commit for s in stores] == [old, new, None, old]
    assert stores[2] is asked[2]  # the lab's own store is untouched
    ids = [s.trial_id for s in expand(["fly-256"], [("sigkill",)], stores, 1, 7)]
    assert ids[0] == f"fly-256.sigkill.own_store=v1_{old[:7]}-{stores[0].label.rpartition('-')[2]}.1"
    assert f"v2_{new[:7]}" in ids[1] and ids[2] == "fly-256.sigkill.ns506.1"
    commit, tree = checkout(StoreRef.parse(stores[0].store_ref or ""), tmp_path / "cache", stores[0].store_commit)
    assert dataclasses.replace(stores[0], store_path=str(tree)).label == stores[0].label and commit == old
    assert not (tmp_path / "cache" / "stores" / new).exists()  # resolving checked nothing out
