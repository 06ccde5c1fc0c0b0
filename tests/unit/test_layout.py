"""The shape of the code: the image holds everything the in-machine code imports, faults and oracle
agree, every error joins LabError, and no module grows past what a newcomer can read."""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import pkgutil
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAX_LINES = 400
# What runs inside a machine: the workload and its services, the fault agent, the power-loss
# filesystem, the restarted machine's probe, the Compose judge and the explore sandbox's checker.
IN_MACHINE_ENTRY_POINTS = ("repro.workload", "repro.workload.__main__", "repro.workload.agent",
                           "repro.workload.dashboard", "repro.workload.npm_cache", "repro.lossyfs.__main__",
                           "repro.verify.probe", "repro.oracle.__main__", "repro.verify.importcheck",
                           "repro.workload.grow", "repro.explore.worker")
# Besides the standard library and the store, the image has Debian's python3-pyfuse3 (and trio).
IMAGE_THIRD_PARTY = {"pyfuse3", "trio"}


def _image_modules() -> set[str]:
    """The repro modules the Dockerfile copies into /opt/lab (whole packages or single files)."""
    copied: set[str] = set()
    for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines():
        if not line.startswith("COPY repro/"):
            continue
        for source in line.split()[1:-1]:
            path = ROOT / source
            files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            for file in files:
                parts = file.relative_to(ROOT).with_suffix("").parts
                copied.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return copied


def _module_file(name: str, root: pathlib.Path = ROOT) -> pathlib.Path:
    base = root.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _imports(name: str, root: pathlib.Path = ROOT) -> set[str]:
    """Absolute names of every module ``name`` imports (at any level, also inside functions)."""
    tree = ast.parse(_module_file(name, root).read_text())
    package = name if _module_file(name, root).name == "__init__.py" else name.rpartition(".")[0]
    top = name.split(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # "from repro.x import y" may import the module repro.x.y
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate.startswith(top) and _module_file(candidate, root).exists() else base)
    return found


def _image_problems(image: set[str]) -> tuple[list[str], set[str]]:
    """Walk the imports of the in-machine entry points: what the image (the set of copied modules)
    lacks, and every module reached."""
    seen: set[str] = set()
    todo = list(IN_MACHINE_ENTRY_POINTS)
    problems: list[str] = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in image:
            problems.append(f"{name} runs in the machine but the Dockerfile does not copy it")
            continue
        for imported in _imports(name):
            top = imported.split(".")[0]
            if top == "repro":
                todo.append(imported)
                todo.extend(_parents(imported))
            elif top not in sys.stdlib_module_names and top not in IMAGE_THIRD_PARTY and top != "hermes_state" \
                    and top != "__future__":
                problems.append(f"{name} imports {imported}, which the image does not have")
    return problems, seen


def test_the_image_holds_every_module_the_in_machine_code_imports() -> None:
    problems, seen = _image_problems(_image_modules())
    assert not problems, "\n".join(problems)
    assert "repro.verify.probe" in seen and "repro.workload.agent" in seen


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def test_the_import_check_catches_a_missing_module() -> None:
    """The check above must be able to fail: an image without protocol.py (which the workload, the
    agent and the probe all import) is named as missing it."""
    image = _image_modules()
    assert "repro.machine.container" not in image and "repro.cli" not in image  # the host side never goes in
    problems, _ = _image_problems(image - {"repro.protocol"})
    assert "repro.protocol runs in the machine but the Dockerfile does not copy it" in problems


def test_the_lab_never_imports_the_bundled_store_on_its_own_side() -> None:
    """An installed lab has no top-level hermes_state (the wheel ships it as repro/_store, for the image
    only): host-side modules -- everything the image does not copy -- must not import it."""
    host_side = sorted(".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                       for f in (ROOT / "repro").rglob("*.py"))
    image = _image_modules()
    offenders = [name for name in host_side if name not in image
                 and any(i.split(".")[0] == "hermes_state" for i in _imports(name))]
    assert offenders == []


def test_every_fault_the_runner_knows_is_known_to_the_oracle_and_back() -> None:
    from repro.faults import FAULTS
    from repro.oracle.promises import FAULT_CRASH_CLASSES
    from repro.scenario import FAULT_TRAITS, FaultName

    assert set(FAULTS) == set(FaultName), "a fault name without a fault class, or the reverse"
    assert set(FAULT_TRAITS) == set(FaultName), "a fault name without its traits, or the reverse"
    assert {name.value for name in FAULTS} == set(FAULT_CRASH_CLASSES), "the oracle's table and the runner disagree"
    for name, fault in FAULTS.items():
        assert fault.name is name
        assert FAULT_CRASH_CLASSES[name.value] is fault.crash_class, f"{name.value}: crash classes disagree"


def test_every_error_the_lab_defines_joins_labError() -> None:
    from repro.errors import LabError

    strays = []
    for info in pkgutil.walk_packages([str(ROOT / "repro")], prefix="repro."):
        if info.name.endswith("__main__") or info.name.startswith("repro.lossyfs.fuse"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError as exc:  # pyfuse3 is Debian's, not in the venv
            if "pyfuse3" in str(exc) or "trio" in str(exc):
                continue
            raise
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, Exception) and not issubclass(cls, LabError):
                strays.append(f"{info.name}.{cls.__name__}")
    assert not strays, f"errors outside the LabError tree: {strays}"


@pytest.mark.parametrize("package", ["repro", "hermes_state"])
def test_no_module_is_longer_than_a_newcomer_can_read(package: str) -> None:
    too_long = {str(p.relative_to(ROOT)): n for p in (ROOT / package).rglob("*.py")
                if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_the_code_map_matches_the_tree() -> None:
    """docs/architecture.md's map of the code names every package and top-level module of repro/, and
    nothing else."""
    layout = (ROOT / "docs" / "architecture.md").read_text().split("## Map of the code", 1)[1].split("```")[1]
    named = {line.split()[0].rstrip("/") for line in layout.splitlines() if line.startswith("  ") and line.split()
             and not line.startswith("   ")}
    actual = {p.name for p in (ROOT / "repro").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    actual |= {p.stem + ".py" for p in (ROOT / "repro").glob("*.py") if p.stem != "__init__"}
    assert named == actual, f"map only: {sorted(named - actual)}; tree only: {sorted(actual - named)}"
    for top in ("hermes_state/", "docker/", "docs/", "tests/", "bench/"):
        assert top in layout and (ROOT / top).is_dir()


# -- layer order: no import circles -------------------------------------------------------------
# A unit is a top-level module of repro or one of its packages: units must not import each other in a
# circle, and neither may the modules inside one package. Circles not broken yet, each named by its
# modules: none are left, and the list may only shrink (a test below fails when an entry is no longer a circle).
KNOWN_CIRCLES: frozenset[frozenset[str]] = frozenset()


def _modules(root: pathlib.Path, package: str) -> list[str]:
    return sorted(".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
                  for f in (root / package).rglob("*.py"))


def _unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _import_graphs(root: pathlib.Path, package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(unit -> units it imports, module -> modules of its own package it imports), every import counted:
    top-level, inside functions and under TYPE_CHECKING (a circle of annotations is still a circle)."""
    modules = _modules(root, package)
    units: dict[str, set[str]] = {}
    inner: dict[str, set[str]] = {}
    for module in modules:
        for imported in _imports(module, root):
            if imported.split(".")[0] != package:
                continue
            while imported not in modules and "." in imported:  # "from repro.x import name": the module repro.x
                imported = imported.rpartition(".")[0]
            if _unit(module) != _unit(imported):
                units.setdefault(_unit(module), set()).add(_unit(imported))
            elif module != imported and module.count(".") > 1:  # within one package
                inner.setdefault(module, set()).add(imported)
    return units, inner


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _all_circles(root: pathlib.Path, package: str) -> list[frozenset[str]]:
    units, inner = _import_graphs(root, package)
    return _circles(units) + _circles(inner)


def _described(circle: frozenset[str], root: pathlib.Path, package: str) -> str:
    units, inner = _import_graphs(root, package)
    edges = [f"{a} -> {b}" for a in sorted(circle) for b in sorted({**units, **inner}.get(a, ())) if b in circle]
    return "; ".join(edges)


def test_no_import_runs_in_a_circle() -> None:
    """Imports only go down (docs/architecture.md): a circle between repro's packages and top-level
    modules, or between the modules of one package, fails -- naming every import in it."""
    new = [c for c in _all_circles(ROOT, "repro") if c not in KNOWN_CIRCLES]
    assert not new, "import circles:\n" + "\n".join(_described(c, ROOT, "repro") for c in new)


def test_every_known_circle_is_still_one() -> None:
    """The list of circles not broken yet only shrinks: a broken one must leave it."""
    gone = KNOWN_CIRCLES - set(_all_circles(ROOT, "repro"))
    assert not gone, f"no longer circles, remove from KNOWN_CIRCLES: {sorted(sorted(c) for c in gone)}"


def test_the_circle_rule_catches_a_constructed_circle(tmp_path: pathlib.Path) -> None:
    """The known-bad case: a data package importing, inside a function, the package that imports it
    (the shape of scenario -> faults -> scenario), and two modules of one package importing each other."""
    files = {
        "lab/__init__.py": "",
        "lab/data/__init__.py": "from lab.data.model import Spec\n",
        "lab/data/model.py": "class Spec:\n    def ends(self):\n        from lab.faults import FAULTS\n        return FAULTS\n",
        "lab/faults/__init__.py": "from lab.data import Spec\nFAULTS = {}\n",
        "lab/report/__init__.py": "",
        "lab/report/records.py": "from .outcome import outcome\n",
        "lab/report/outcome.py": "from lab.report import records\n",
        "lab/cli.py": "import lab.faults\nfrom lab.report.records import outcome\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    circles = _all_circles(tmp_path, "lab")
    assert set(circles) == {frozenset({"lab.data", "lab.faults"}),
                            frozenset({"lab.report.records", "lab.report.outcome"})}
    assert "lab.data -> lab.faults" in _described(frozenset({"lab.data", "lab.faults"}), tmp_path, "lab")


# Where argparse's Namespace may appear: the CLI's edge, which turns it into the typed options
# (repro/options.py). Everything below takes those; a separate program (the lossyfs daemon) types
# its own command line the same way.
NAMESPACE_ALLOWED = {"repro/cli.py", "repro/commands.py", "repro/options.py"}
_NAMESPACE = re.compile(r"argparse\.Namespace|from\s+argparse\s+import[^\n]*\bNamespace\b")


def _namespace_users(root: pathlib.Path, package: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / package).rglob("*.py")
                  if str(p.relative_to(root)) not in NAMESPACE_ALLOWED and _NAMESPACE.search(p.read_text()))


def test_no_namespace_travels_below_the_cli() -> None:
    """Only the CLI's edge sees argparse's Namespace; below it, the frozen options of repro/options.py."""
    assert _namespace_users(ROOT, "repro") == []


def test_the_namespace_rule_catches_a_module_that_takes_one(tmp_path: pathlib.Path) -> None:
    (tmp_path / "repro" / "explore").mkdir(parents=True)
    (tmp_path / "repro" / "cli.py").write_text("def _dispatch(args: argparse.Namespace) -> int: ...\n")
    (tmp_path / "repro" / "explore" / "command.py").write_text("def run(args: argparse.Namespace) -> int: ...\n")
    (tmp_path / "repro" / "prepare.py").write_text("from argparse import ArgumentParser, Namespace\n")
    assert _namespace_users(tmp_path, "repro") == ["repro/explore/command.py", "repro/prepare.py"]
