"""A run's report files: report.json (what everything else is re-rendered from), report.md, junit.xml and
report.html, all from one RunResult and one outcome so that they agree."""

from __future__ import annotations

import pathlib
import xml.etree.ElementTree as ET

from repro.report.html import render_html
from repro.report.junit import junit_element
from repro.report.markdown import render_markdown
from repro.report.outcome import outcome
from repro.report.records import ResultsError, RunResult

REPORT_JSON = "report.json"


def write_all(out_dir: pathlib.Path, run: RunResult) -> tuple[pathlib.Path, ...]:
    """report.json, report.md, junit.xml and report.html under ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = outcome(run)
    (out_dir / REPORT_JSON).write_text(run.to_json() + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(run, result), encoding="utf-8")
    tree = ET.ElementTree(junit_element(run, result))
    ET.indent(tree)
    tree.write(out_dir / "junit.xml", encoding="utf-8", xml_declaration=True)
    (out_dir / "report.html").write_text(render_html(run, out_dir, result), encoding="utf-8")
    return tuple(out_dir / name for name in (REPORT_JSON, "report.md", "junit.xml", "report.html"))


def read_run(run_dir: pathlib.Path) -> RunResult:
    """The RunResult of a report directory (ResultsError when it is not one)."""
    path = run_dir / REPORT_JSON
    if not path.is_file():
        raise ResultsError(f"{path} does not exist")
    try:
        return RunResult.from_json(path.read_text(encoding="utf-8"))
    except ResultsError as exc:
        raise ResultsError(f"{path} is not a lab report: {exc}") from None
