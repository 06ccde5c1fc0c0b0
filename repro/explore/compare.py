"""`repro explore --compare-models`: the lab's file-level persistence models against real kernel filesystems, side by side.

For each store configuration, the same seeded workload is recorded twice or more: once on the
lossy filesystem directly (its crash states come from the file-level models, repro/explore/models.py)
and once below each kernel filesystem asked for (``--filesystems ext4 xfs btrfs``; block-level states
recovered by the kernel, repro/explore/blockspace.py). Every recording is explored with the same
budget and seed, and the comparison lists, per configuration and side, the classes of outcome seen
(pass, expected-loss, lost-acked, corrupt; and the promises broken, by kind) with one state id for each.

The rule it checks: every class the kernel's states show -- a finding (expected-loss, lost-acked,
corrupt, promised or not) or a promise broken, by kind -- must also be shown by some file-level model's
state; otherwise the models are too kind on this workload, a defect of the models (exit 1). Where a
model shows a class that no kernel state checked showed, the models are more pessimistic than that
filesystem here: reported, with the state on the model side and the number of kernel states checked
without it; not a failure. The two recordings of one
configuration are two runs of the same seeded workload, not one trace: the page cache and the
filesystem's own writes differ, so the comparison is of classes of outcome, never of state ids.
"""

from __future__ import annotations

import json
import pathlib
import random
import shlex
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from repro.errors import ExitCode, ScenarioError
from repro.explore.check import StateResult
from repro.explore.models import filesystem_models
from repro.explore.runner import Exploration
from repro.filesystems import FsSpec
from repro.oracle.verdicts import Verdict

if TYPE_CHECKING:
    from repro.options import ExploreOptions

FILE_LEVEL = "file-level models"
FINDINGS = (Verdict.EXPECTED_LOSS, Verdict.LOST_ACKED, Verdict.CORRUPT)


@dataclass(frozen=True)
class Side:
    """One recording of one configuration, explored: on lossyfs directly, or below a kernel filesystem."""

    name: str  # FILE_LEVEL, or the filesystem's label
    states: int
    outcomes: dict[str, str]  # verdict -> the first state id with it
    broken: dict[str, str]  # violation kind -> the first state id with it
    trace: str
    seconds: float

    def classes(self) -> list[tuple[str, str]]:
        """What the rule compares, each with its first state: the findings (an outcome worse than a pass,
        promised or not) and the promises broken."""
        found = [(verdict.value, self.outcomes[verdict.value]) for verdict in FINDINGS if verdict.value in self.outcomes]
        return found + [(f"broken:{kind}", state) for kind, state in sorted(self.broken.items())]

    @classmethod
    def of(cls, name: str, run: Exploration, only: tuple[object, ...] | None = None) -> Side:
        """The side of ``run``'s states, or of those of the models ``only`` (a filesystem's preset)."""
        outcomes: dict[str, str] = {}
        broken: dict[str, str] = {}
        results = [r for r in run.results if only is None or r.model in only]
        for result in sorted(results, key=_order):
            outcomes.setdefault(result.verdict.value, _id(result))
            if result.kind is not None:
                broken.setdefault(result.kind.value, _id(result))
        return cls(name, len(results), outcomes, broken, str(run.trace_dir.path), round(run.seconds, 1))


def _id(result: StateResult) -> str:
    return f"{result.model.value}:{result.index}"


def _order(result: StateResult) -> tuple[int, int]:
    return (result.point, result.index)


@dataclass(frozen=True)
class Row:
    """One configuration: its sides, and what the rule found."""

    config: str
    in_force: str  # journal mode + synchronous, as READY reported them
    sides: tuple[Side, ...]
    misses: tuple[str, ...] = ()  # "ext4: corrupt (block-prefix:12)": broken on a filesystem, by no model
    stricter: tuple[str, ...] = ()  # "lost-acked (lazy-dirs:40) never on ext4 (600 states)"
    # "ext4: corrupt (block-drop-one:14), by none of the ext4 preset's models": the filesystem's own preset is too kind
    preset_misses: tuple[str, ...] = ()
    presets: tuple[Side, ...] = ()  # per kernel side, the file-level states of that filesystem's preset

    @classmethod
    def of(cls, config: str, in_force: str, sides: tuple[Side, ...], presets: tuple[Side, ...] = ()) -> Row:
        """``presets``: per kernel side, in the same order, the file-level side of that filesystem's preset."""
        models, kernels = sides[0], sides[1:]
        misses = tuple(f"{k.name}: {what} ({state})" for k in kernels for what, state in k.classes()
                       if what not in dict(models.classes()))
        stricter = tuple(f"{what} ({state}) never on {k.name} ({k.states} states)" for k in kernels
                         for what, state in models.classes() if what not in dict(k.classes()))
        preset_misses = tuple(f"{k.name}: {what} ({state}), by none of the {p.name}" for k, p in zip(kernels, presets)
                              for what, state in k.classes() if what not in dict(p.classes()))
        return cls(config, in_force, sides, misses, stricter, preset_misses, presets)


@dataclass(frozen=True)
class Comparison:
    seed: int
    ops: int
    budget: int
    rows: tuple[Row, ...] = field(default=())

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.TRIAL_FAILED if any(r.misses or r.preset_misses for r in self.rows) else ExitCode.OK


def run(configs: tuple[str, ...], filesystems: tuple[FsSpec, ...], *, seed: int, ops: int, budget: int,
        explore_one: Callable[[str, FsSpec | None], Exploration]) -> Comparison:
    """Record and explore every configuration on lossyfs and below each filesystem; ``explore_one(config, fs)``
    records one (fs None: on lossyfs directly) and explores it with the comparison's seed and budget."""
    if not filesystems:
        raise ScenarioError("--compare-models needs at least one kernel filesystem (--filesystems ext4 ...)")
    rows = []
    for config in configs:
        file_run = explore_one(config, None)
        sides = [Side.of(FILE_LEVEL, file_run)]
        presets = []
        for fs in filesystems:
            sides.append(Side.of(fs.label, explore_one(config, fs)))
            presets.append(Side.of(f"{fs.kind.value} preset's models", file_run,
                                   filesystem_models(fs.kind.value)))  # type: ignore[arg-type]
        cfg = file_run.config
        rows.append(Row.of(config, f"{cfg.journal_mode.value} + synchronous={cfg.synchronous.name.lower()}",
                           tuple(sides), tuple(presets)))
    return Comparison(seed, ops, budget, tuple(rows))


def to_dict(comparison: Comparison) -> dict[str, object]:
    return {"format": "repro-compare-models", "version": 1, "seed": comparison.seed, "ops": comparison.ops,
            "budget": comparison.budget, "exit_code": int(comparison.exit_code),
            "rows": [{"config": r.config, "in_force": r.in_force, "misses": list(r.misses),
                      "stricter": list(r.stricter), "preset_misses": list(r.preset_misses),
                      "sides": [{"name": s.name, "states": s.states, "outcomes": s.outcomes, "broken": s.broken,
                                 "trace": s.trace, "seconds": s.seconds} for s in r.sides],
                      "presets": [{"name": s.name, "states": s.states, "outcomes": s.outcomes, "broken": s.broken}
                                  for s in r.presets]} for r in comparison.rows]}


def _cell(side: Side) -> str:
    seen = [f"{v.value} ({side.outcomes[v.value]})" for v in FINDINGS if v.value in side.outcomes]
    broken = ", ".join(f"{kind} ({state})" for kind, state in sorted(side.broken.items())) or "none"
    return f"{side.states} states; findings: {', '.join(seen) or 'none'}; broken: {broken}"


def render_markdown(comparison: Comparison) -> str:
    names = [s.name for s in comparison.rows[0].sides] if comparison.rows else []
    lines = [f"# File-level models against kernel filesystems (seed {comparison.seed}, {comparison.ops} operations, "
             f"budget {comparison.budget} per model)", "",
             "| configuration | in force | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for row in comparison.rows:
        lines.append(f"| {row.config} | {row.in_force} | " + " | ".join(_cell(s) for s in row.sides) + " |")
    lines += ["", "## Broken by a kernel filesystem, by no model (defects of the models)", ""]
    lines += [f"- {r.config}: {m}" for r in comparison.rows for m in r.misses] or ["- none"]
    lines += ["", "## Shown by a kernel filesystem, by none of its own preset's models (`--models ext4` ...)", ""]
    lines += [f"- {r.config}: {m}" for r in comparison.rows for m in r.preset_misses] or ["- none"]
    lines += ["", "## Broken by a model, by no kernel state checked (the models are stricter)", ""]
    lines += [f"- {r.config}: {m}" for r in comparison.rows for m in r.stricter] or ["- none"]
    return "\n".join(lines) + "\n"


def write(out: pathlib.Path, comparison: Comparison) -> tuple[pathlib.Path, pathlib.Path]:
    md, js = out / "compare.md", out / "compare.json"
    md.write_text(render_markdown(comparison), encoding="utf-8")
    js.write_text(json.dumps(to_dict(comparison), indent=2) + "\n", encoding="utf-8")
    return md, js


def command(opts: ExploreOptions, argv: list[str]) -> int:
    """--compare-models: every configuration recorded on lossyfs and below each filesystem, explored, compared."""
    import dataclasses

    from rich.console import Console

    from repro.explore.blockspace import BlockModel
    from repro.explore.command import (_check_numbers, _filesystem, _image, _record, _recording, _Recording,
                                       require_programs)
    from repro.explore.models import PersistenceModel
    from repro.explore.configs import CONFIGURATIONS
    from repro.explore.runner import explore
    from repro.filesystems import parse
    from repro.machine import engine
    from repro.machine.labels import RUN_ID, owner
    from repro.report import outdir
    from repro.scenario import parse_size

    if opts.trace_dir or opts.materialize or opts.fs:
        raise ScenarioError("--compare-models records its own traces: give no TRACE_DIR, --fs or --materialize "
                            "(the filesystems are --filesystems)")
    _check_numbers(opts)
    names = tuple(CONFIGURATIONS) if opts.configs.strip() == "all" else tuple(
        c.strip() for c in opts.configs.split(",") if c.strip())
    unknown = [c for c in names if c not in CONFIGURATIONS]
    if unknown or not names:
        raise ScenarioError(f"unknown configuration {', '.join(unknown) or '(none)'} for --configs; known: "
                            f"{', '.join(CONFIGURATIONS)}, or all")
    base = _recording(opts)  # the profile, store settings and workload, checked; --fs is not given here
    systems = tuple(parse(text) for text in opts.filesystems)
    plans: dict[str, _Recording] = {}
    for fs in systems:  # each filesystem on a disk at least as large as its smallest
        size = max(base.profile.disk, parse_size(f"{(fs.kind.min_size * 11 // 10) >> 20}m"))
        profile = dataclasses.replace(base.profile, disk=size) if size != base.profile.disk else base.profile
        plans[fs.label] = dataclasses.replace(base, profile=profile, fs=fs, loops=_filesystem(fs.label, profile)[1])
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1, 2**31)
    target = outdir.plan(opts.out, RUN_ID, force=opts.force, prefix="compare-")
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    cli = engine.client()
    try:
        image = _image(cli, opts.image)
        require_programs(image, systems)
        out = outdir.claim(target, RUN_ID)

        def explore_one(config: str, fs: FsSpec | None) -> Exploration:
            plan = plans[fs.label] if fs is not None else base
            plan = dataclasses.replace(plan, store=CONFIGURATIONS[config])
            side = out / config / (fs.label.replace(":", "-").replace(",", "-") if fs else "file-level")
            side.mkdir(parents=True)
            trace = _record(plan, seed, side, shlex.join(["repro", *argv]), image)
            models = tuple(BlockModel) if fs is not None else PersistenceModel.parse_list(
                ",".join(["all", *sorted({f.kind.value for f in systems})]))  # the presets, and each filesystem's
            run = explore(trace, models, budget=opts.budget, seed=seed, jobs=opts.jobs, image=image)  # type: ignore[arg-type]
            err.print(f"  {config} on {fs.label if fs else 'lossyfs (file-level models)'}: {run.states} states, "
                      f"{sum(m.broken for m in run.models)} broken promises, {run.seconds:.0f} s")
            return run

        result = run(names, systems, seed=seed, ops=opts.ops, budget=opts.budget, explore_one=explore_one)
    finally:
        engine.cleanup(cli, owner=owner())
    md, js = write(out, result)
    print(render_markdown(result))
    err.print(f"reports: {md}, {js}; seed {seed}; exit {int(result.exit_code)}")
    return result.exit_code
