"""A run's report files: report.json (what everything else is re-rendered from), report.md, junit.xml and
report.html, all from one RunResult and one outcome so that they agree."""

from __future__ import annotations

import io
import pathlib
import xml.etree.ElementTree as ET

from repro.report.html import render_html
from repro.report.junit import junit_element
from repro.report.markdown import render_markdown
from repro.report.outcome import outcome, report_json
from repro.report.outdir import replace_file, write_error
from repro.report.records import ResultsError, RunResult

REPORT_JSON = "report.json"


def write_all(out_dir: pathlib.Path, run: RunResult) -> tuple[pathlib.Path, ...]:
    """report.json, report.md, junit.xml and report.html under ``out_dir`` (created if needed), each replaced
    whole and never written through a link (outdir.replace_file); ReportWriteError if the disk refuses."""
    result = outcome(run)
    tree = ET.ElementTree(junit_element(run, result))
    ET.indent(tree)
    junit = io.BytesIO()
    tree.write(junit, encoding="utf-8", xml_declaration=True)
    files: dict[str, str | bytes] = {
        REPORT_JSON: report_json(run, result) + "\n", "report.md": render_markdown(run, result),
        "junit.xml": junit.getvalue(), "report.html": render_html(run, out_dir, result)}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            replace_file(out_dir / name, data)
    except OSError as exc:
        raise write_error(out_dir, exc) from None
    return tuple(out_dir / name for name in files)


def read_run(run_dir: pathlib.Path) -> RunResult:
    """The RunResult of a report directory (ResultsError when it is not one)."""
    path = run_dir / REPORT_JSON
    if not path.is_file():
        raise ResultsError(f"{path} does not exist")
    try:
        return RunResult.from_json(path.read_text(encoding="utf-8"))
    except ResultsError as exc:
        raise ResultsError(f"{path} is not a lab report: {exc}") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path} is not a lab report: not UTF-8 text") from None
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}") from None
