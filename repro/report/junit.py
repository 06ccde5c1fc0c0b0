"""junit.xml for CI: one suite per store configuration (names stable across runs: no run id in them), a
testcase per trial, the old-vs-new comparison and every --fail-on condition as testcases of their own.

A trial's testcase fails when it harmed data where its configuration promised it would not, and
errors when the lab could not judge it; a comparison row fails when it is a significant regression and the run gates on
``--fail-on regression``; a --fail-on testcase fails when its condition holds. So a CI that
reads only junit.xml sees what the exit code says.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from repro.report.blame import NO_CONTROLS, Controls, controls_of, promise_text
from repro.report.outcome import RunOutcome, outcome
from repro.report.records import FailOn, RunResult, TrialRecord
from repro.report.summary import WRITES_LOST, config_label, in_force
from repro.scenario.stores import ref_name

PREFIX = "hermes-lab"


def slug(text: str) -> str:
    """A name safe in a JUnit class name (dots separate its levels, so none inside one level)."""
    return re.sub(r"[^A-Za-z0-9_=+-]+", "_", text).strip("_") or "none"


def suite_label(t: TrialRecord, label: str) -> str:
    """The configuration label with a ref's store named by its resolved commit (``REPO@v2026.6@1a2b3c4``, or
    ``REPO@03fbf6e`` for ``REPO@9aba95b05^``): made safe, the typed rev alone would read as another commit."""
    store = (t.scenario or {}).get("store")
    if not isinstance(store, dict) or not store.get("store_ref") or not store.get("store_commit"):
        return label
    repo, _, rev = str(store["store_ref"]).rpartition("@")
    return label.replace(t.store, f"{repo}@{ref_name(rev, str(store['store_commit']))}", 1)


def _suite(parent: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=name)


def _close(suite: ET.Element) -> tuple[int, int, int, float]:
    cases = suite.findall("testcase")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    errors = sum(1 for c in cases if c.find("error") is not None)
    time = sum(float(c.get("time", "0")) for c in cases)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    suite.set("time", f"{time:.3f}")
    return len(cases), failures, errors, time


def _trial_case(suite: ET.Element, t: TrialRecord, controls: Controls = NO_CONTROLS) -> None:
    case = ET.SubElement(suite, "testcase", classname=f"{suite.get('name')}.{slug(t.profile)}.{slug(t.faults_label)}",
                         name=t.id, time=f"{t.duration_s:.3f}")
    text = f"{t.detail}\nreplay: {t.replay}" + (f"\nartifacts: {t.artifacts_dir}" if t.artifacts_dir else "")
    if t.lab_error:
        ET.SubElement(case, "error", message=t.detail[:200], type="lab-error").text = text
    elif t.failed:
        ET.SubElement(case, "failure", message=f"{t.verdict.value}: {t.detail[:200]}",
                      type=t.verdict.value).text = f"{promise_text(t, controls)}\n{text}"  # whose fault, first
    ET.SubElement(case, "system-out").text = (
        f"verdict={t.verdict.value} expected={t.expected} store={config_label(t)} in_force={in_force(t)}"
        f" seed={t.seed} acked={t.acked} {WRITES_LOST.replace(' ', '_')}={t.lost_acked}"
        + (f" preexisting={t.preexisting} lost_preexisting={t.lost_preexisting}\nstart: {t.start}" if t.start else "")
        + f"\nreplay: {t.replay}"
    )


def junit_element(run: RunResult, result: RunOutcome | None = None) -> ET.Element:
    result = result or outcome(run)
    suites = ET.Element("testsuites", name=PREFIX)
    by_config: dict[str, ET.Element] = {}
    controls = controls_of(run.trials)
    for t in run.trials:
        label = config_label(t)
        if label not in by_config:
            suite = by_config[label] = _suite(suites, f"{PREFIX}.{slug(suite_label(t, label))}")
            props = ET.SubElement(suite, "properties")
            ET.SubElement(props, "property", name="store_configuration", value=label)
            ET.SubElement(props, "property", name="seed", value=str(run.meta.seed))
            ET.SubElement(props, "property", name="command", value=run.meta.command)
        _trial_case(by_config[label], t, controls)
    if result.comparison is not None:
        comparison = result.comparison
        suite = _suite(suites, f"{PREFIX}.comparison")
        gated = FailOn.REGRESSION in run.meta.fail_on
        for row in comparison.rows:
            case = ET.SubElement(suite, "testcase", time="0.000",
                                 classname=f"{PREFIX}.comparison.{slug(comparison.old_label)}-vs-"
                                           f"{slug(comparison.new_label)}",
                                 name=f"{slug(row.profile)}.{slug(row.faults)}")
            if gated and row.change == "worse":
                ET.SubElement(case, "failure", type="regression",
                              message=f"{comparison.new_label} {row.change_text} than {comparison.old_label}")
            ET.SubElement(case, "system-out").text = f"{row.change_text}\n{comparison.headline}"
    if result.gates:
        suite = _suite(suites, f"{PREFIX}.fail-on")
        for gate in result.gates:
            case = ET.SubElement(suite, "testcase", classname=f"{PREFIX}.fail-on", name=gate.condition.value,
                                 time="0.000")
            if gate.failed:
                ET.SubElement(case, "failure", type=gate.condition.value, message=gate.reason)
            ET.SubElement(case, "system-out").text = gate.reason
    totals = [_close(s) for s in suites.findall("testsuite")]
    suites.set("tests", str(sum(t[0] for t in totals)))
    suites.set("failures", str(sum(t[1] for t in totals)))
    suites.set("errors", str(sum(t[2] for t in totals)))
    suites.set("time", f"{sum(t[3] for t in totals):.3f}")
    return suites
