"""The docs' shape: a short README with the two commands CI runs, commands written the one way a user runs
them, every block's directive understood, and every relative link and anchor resolving."""

from __future__ import annotations

import pathlib
import re
import shlex

import pytest

from doccommands import ROOT, all_commands, collect, documents

MAX_README_LINES = 150
MAIN_JOB = "bash docker/setup.sh && .venv/bin/repro run"
TESTS = "bash docker/setup.sh && .venv/bin/pytest"
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _without_comment(command: str) -> str:
    return command.split("  #", 1)[0].strip()


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= MAX_README_LINES
    commands = [_without_comment(c.text) for c in collect(ROOT / "README.md")]
    assert commands[:2] == [MAIN_JOB, TESTS]


def test_ci_runs_the_readmes_test_command() -> None:
    steps = [line.strip().removeprefix("exec ") for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")
             and not line.startswith(("set ", "cd ", "export "))]
    assert steps == TESTS.split(" && ")


def _programs(command: str) -> list[str]:
    """The program of each step of a shell line (after VAR=value assignments; comments dropped)."""
    lexer = shlex.shlex(command.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    steps: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|", "&"):
            steps.append([])
        elif steps[-1] or not re.match(r"^[A-Z_]+=", token):
            steps[-1].append(token)
    return [s[0] if s[0] not in ("python", "python3", ".venv/bin/python") else " ".join(s[:3]) for s in steps if s]


def test_every_documented_command_is_run_the_way_a_user_runs_it() -> None:
    """The console script of the checkout's venv, never a bare `repro` or `python -m repro.cli`, and no
    PYTHONPATH: a command the tests run differently from the user hides a broken install."""
    for command in all_commands():
        programs = _programs(command.text)
        assert "PYTHONPATH" not in command.text, command.id
        assert "repro" not in programs and not any("repro.cli" in p for p in programs), command.id
        assert set(programs) <= {".venv/bin/repro", ".venv/bin/pytest", ".venv/bin/python -m repro.refdoc", "bash",
                                 "docker", "rm", "mkdir", "cp", "cat", "git", "sed"}, f"{command.id}: {programs}"


def test_every_block_is_run_or_says_why_not() -> None:
    commands = all_commands()
    assert len([c for c in commands if not c.not_run]) >= 20
    assert all(c.not_run is None or len(c.not_run) > 10 for c in commands)
    assert all(re.search(r"issue \d+", str(c.xfail)) for c in commands if c.xfail), "an xfail names its issue"


def test_the_collector_reads_directives_and_refuses_a_misspelt_one(tmp_path: pathlib.Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("text\n\n<!-- test: docker slow -->\n<!-- exit: 2 -->\n<!-- output: repro: error -->\n```sh\n# a comment\n"
                   ".venv/bin/repro run \\\n    --trials 2\n\n.venv/bin/repro doctor\n```\n\n"
                   "<!-- not run in CI: needs a second host -->\n```bash\n.venv/bin/repro clean\n```\n\n"
                   "```python\nprint('not a shell')\n```\n\n<!-- wheel -->\n\n```sh\n.venv/bin/repro --help\n```\n")
    first, second, third, fourth = collect(doc, tmp_path)
    assert (first.text, first.line, first.marks, first.exit, first.output) == (
        ".venv/bin/repro run \\\n    --trials 2", 8, ("docker", "slow"), 2, "repro: error")
    assert second.text == ".venv/bin/repro doctor" and second.marks == ("docker", "slow")
    assert third.not_run == "needs a second host" and not third.marks
    assert not fourth.wheel  # a blank line parts a directive from its block
    doc.write_text("<!-- tests: docker -->\n```sh\n.venv/bin/repro doctor\n```\n")
    with pytest.raises(ValueError, match="no directive"):
        collect(doc, tmp_path)
    doc.write_text("<!-- test: dokcer -->\n```sh\n.venv/bin/repro doctor\n```\n")
    with pytest.raises(ValueError, match="unknown marks"):
        collect(doc, tmp_path)
    doc.write_text("<!-- not run in CI -->\n```sh\n.venv/bin/repro doctor\n```\n")
    with pytest.raises(ValueError, match="reason"):
        collect(doc, tmp_path)


def _anchors(path: pathlib.Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", text, flags=re.MULTILINE)}


def test_every_relative_link_and_anchor_resolves_and_every_page_is_linked() -> None:
    broken, linked = [], set()
    for path in documents():
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
        for target in _LINK.findall(text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            linked.add(dest)
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken
    unlinked = [str(p.relative_to(ROOT)) for p in documents() if p.name != "README.md" and p.resolve() not in linked]
    assert not unlinked, f"pages no other page links to: {unlinked}"


def test_concepts_has_the_glossary_and_the_threat_model_heading() -> None:
    concepts = (ROOT / "docs" / "concepts.md").read_text()
    assert "\n## Glossary\n" in concepts and "\n## Threat model\n" in concepts
    for word in ("**machine**", "**store**", "**preset**", "**disk**", "**trace**", "**evidence**"):
        assert word in concepts
