"""A ref's label: the resolved commit, never the typed rev where, made path-safe, it would read as another commit."""

from __future__ import annotations

import dataclasses

from repro.oracle.verdicts import Verdict
from repro.report.junit import junit_element
from repro.scenario import FaultSpec, Scenario, StoreSpec, get_profile, scenario_to_dict
from repro.scenario.stores import ref_name
from test_report import rec, run_of

CHILD = "9aba95b05" + "1" * 31
PARENT = "03fbf6e" + "2" * 33


def test_ref_names_keep_tags_and_branches_and_use_the_commit_otherwise() -> None:
    assert ref_name("v2026.6", PARENT) == "v2026.6@03fbf6e"
    assert ref_name("main", PARENT) == "main@03fbf6e"
    assert ref_name("9aba95b05^", PARENT) == "03fbf6e"
    assert ref_name("9aba95b05~1", PARENT) == "03fbf6e"
    assert ref_name("9aba95b05", CHILD) == "9aba95b"
    assert ref_name("v2026.6", None) == "v2026.6"


def test_the_parent_never_appears_under_the_childs_hash_in_trial_ids_or_junit() -> None:
    store = StoreSpec("own", store_ref=f"/src/agent@{CHILD[:9]}^", store_commit=PARENT)
    assert "store=03fbf6e-" in store.label and "9aba95b" not in store.label
    scenario = Scenario(get_profile("fly-256"), (FaultSpec.parse("sigkill"),), store=store, trial_id="t001")
    trial = dataclasses.replace(rec(1, Verdict.PASS, store=store.source), scenario=scenario_to_dict(scenario))
    assert trial.store == f"/src/agent@{CHILD[:9]}^ (03fbf6e)"  # as typed, with the commit it resolved to
    (suite,) = junit_element(run_of(trial)).findall("testsuite")
    assert "03fbf6e" in suite.get("name", "") and "9aba95b" not in suite.get("name", "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["store_configuration"].startswith(trial.store)
    tag = StoreSpec("own", store_ref="/src/agent@v2026.6", store_commit=PARENT)
    assert "store=v2026.6@03fbf6e-" in tag.label
