"""The generated reference equals the code, every option has help, help lists what the registries hold, and
options shared between commands are defined once."""

from __future__ import annotations

import argparse
import ast
import functools
import pathlib

import pytest

from repro import cli, refdoc
from repro.cli import build_parser
from repro.explore.models import CHOICES as MODEL_CHOICES, PRESETS as MODEL_PRESETS
from repro.faults import FAULTS
from repro.scenario import HAZARD_DEFAULTS, PRESETS, PROFILES
from repro.workload.spec import OPS

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ("--rate", "--mix", "--message-size", "--image", "--profile", "--profiles", "--fail-on")


@pytest.mark.parametrize("path", refdoc.documents(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_generated_reference_is_up_to_date(path: pathlib.Path) -> None:
    text = path.read_text()
    assert refdoc.regenerate(text) == text, f"{path.relative_to(ROOT)} is stale: run .venv/bin/python -m repro.refdoc"


def test_the_reference_has_every_generated_block() -> None:
    found = {m["name"] for p in refdoc.documents(ROOT) for m in refdoc.BLOCK.finditer(p.read_text())}
    assert found == set(refdoc.GENERATORS)


def test_a_stale_or_unknown_block_is_caught() -> None:
    stale = "<!-- generated: exit-codes -->\n| `0` | old |\n<!-- end generated -->\n"
    assert refdoc.regenerate(stale) != stale and "LAB_FAILED" in refdoc.regenerate(stale)
    with pytest.raises(KeyError, match="unknown generated block"):
        refdoc.regenerate("<!-- generated: nope -->\n<!-- end generated -->")


def options_without_help(parser: argparse.ArgumentParser) -> list[str]:
    """Every option, positional and subcommand of every command whose help is missing or empty."""
    missing = []
    for name, sub in refdoc._walk(parser):
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_has_help() -> None:
    assert options_without_help(build_parser()) == []


def test_the_help_check_can_fail() -> None:
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers(dest="command", help="commands")
    sub.add_parser("go", help="go").add_argument("--far")
    assert options_without_help(parser) == ["x go --far"]


def _help(command: str) -> str:
    for name, parser in refdoc._walk(build_parser()):
        if name == f"repro {command}":  # one line per option, whatever the terminal: nothing hyphenated
            parser.formatter_class = functools.partial(argparse.HelpFormatter, width=100_000)  # type: ignore[assignment]
            return parser.format_help()
    raise AssertionError(command)


def test_the_help_lists_every_name_the_registries_hold() -> None:
    run, explore = _help("run"), _help("explore")
    for names, where in ((PROFILES, (run, _help("matrix"), explore)), (PRESETS, (run, _help("matrix"))),
                         ([f.value for f in FAULTS], (run,)), ([h.value for h in HAZARD_DEFAULTS], (run,)),
                         ([*MODEL_PRESETS, *(c for cs in MODEL_CHOICES.values() for c in cs)], (explore,)), (OPS, (run, explore))):
        for text in where:
            missing = [n for n in names if n not in text]
            assert not missing, f"{missing} missing from the help"


def test_options_shared_between_commands_are_defined_once() -> None:
    tree = ast.parse(pathlib.Path(cli.__file__).read_text())
    defined = [node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
               and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument" and node.args
               and isinstance(node.args[0], ast.Constant)]
    for option in SHARED:
        assert defined.count(option) == 1, f"{option} is added {defined.count(option)} times in repro/cli.py"
