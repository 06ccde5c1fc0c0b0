"""One name per concept (docs/concepts.md#glossary): the trial's machine is never named ``host`` again, which means
only the computer the lab or the engine runs on. Read with ast, so a comment or a string cannot pass or fail it."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The machine's types: the services' Protocol, the class, and the test API's import of it under another name.
MACHINE_TYPES = {"Machine", "ConstrainedHost", "_Machine"}
OLD_NAME = "host"
NOT_CHECKED: tuple[str, ...] = ()  # every package follows the glossary


def _names_a_machine_type(node: ast.expr | None) -> bool:
    """Whether an annotation or a called name is one of MACHINE_TYPES (``X``, ``mod.X``, ``"X"``, ``X | None``)."""
    if node is None:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in MACHINE_TYPES:
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in MACHINE_TYPES:
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            try:
                if _names_a_machine_type(ast.parse(sub.value, mode="eval").body):
                    return True
            except SyntaxError:
                continue
    return False


def _is_old_name(target: ast.expr | None) -> bool:
    """``host`` or ``anything.host``."""
    return (isinstance(target, ast.Name) and target.id == OLD_NAME) or \
        (isinstance(target, ast.Attribute) and target.attr == OLD_NAME)


def _makes_a_machine(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Call) and _names_a_machine_type(value.func)


def machines_named_host(source: str) -> list[int]:
    """The lines where a machine is named ``host``: a parameter or a variable annotated with a machine type,
    or a variable (or ``with ... as``) given a newly made machine."""
    found: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.arguments):
            found += [a.lineno for a in (*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg)
                      if a is not None and a.arg == OLD_NAME and _names_a_machine_type(a.annotation)]
        elif isinstance(node, ast.AnnAssign) and _is_old_name(node.target) and _names_a_machine_type(node.annotation):
            found.append(node.lineno)
        elif isinstance(node, ast.Assign) and _makes_a_machine(node.value) and any(map(_is_old_name, node.targets)):
            found.append(node.lineno)
        elif isinstance(node, ast.withitem) and _makes_a_machine(node.context_expr) \
                and _is_old_name(node.optional_vars):
            found.append(node.context_expr.lineno)
    return sorted(found)


def test_no_machine_is_named_host() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{line}"
                 for top in ("repro", "tests", "bench") for path in sorted((ROOT / top).rglob("*.py"))
                 if not str(path.relative_to(ROOT)).startswith(NOT_CHECKED)
                 for line in machines_named_host(path.read_text())]
    assert offenders == [], f"the machine is named `host` (the glossary's word is machine): {offenders}"


def test_the_rule_catches_each_way_of_naming_a_machine_host() -> None:
    """The known-bad case: every form the rule knows, one per line, and what it must leave alone."""
    bad = '''\
def start(host: Machine, service: str) -> None: ...
def fetch(host: "ConstrainedHost") -> None: ...
def kill(*, host: services.Machine | None = None) -> None: ...
host: ConstrainedHost = make()
host = ConstrainedHost("fly-256")
with ConstrainedHost("fly-256") as host:
    pass
class Trial:
    def __init__(self, machine: ConstrainedHost) -> None:
        self.host: ConstrainedHost = machine
'''
    assert machines_named_host(bad) == [1, 2, 3, 4, 5, 6, 10]
    good = '''\
def start(machine: Machine, host: HostView, host_memory: int = 0) -> None: ...
host = container.attrs["HostConfig"]
machine = ConstrainedHost("fly-256")
with ConstrainedHost("fly-256") as machine:
    pass
"def start(host: Machine) -> None"  # a string is not code
'''
    assert machines_named_host(good) == []
