"""Every command README.md and docs/ tell a user to run, run exactly as written from the root of the checkout."""

from __future__ import annotations

import pytest

from doccommands import ROOT, DocCommand, all_commands, check, user_environment


def params(commands: list[DocCommand]) -> list[object]:
    """One test per command that runs, with the doc's marks (xfail: not strict, a pass is fine)."""
    out: list[object] = []
    for command in commands:
        if command.not_run:
            continue
        marks = [getattr(pytest.mark, mark) for mark in command.marks]
        if command.xfail:
            marks.append(pytest.mark.xfail(reason=command.xfail, strict=False))
        out.append(pytest.param(command, marks=marks, id=command.id))
    return out


@pytest.mark.parametrize("command", params(all_commands()))
def test_the_documented_command_runs_as_written(command: DocCommand) -> None:
    check(command, ROOT, user_environment())
