"""One record per trial, the run around them, their JSON form, and the run's exit code."""

from __future__ import annotations

import enum
import json
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

from repro.errors import ExitCode, ScenarioError
from repro.oracle.verdicts import Judgement, Verdict
from repro.report.jsonfile import ResultsError, as_digests, as_int, as_list, as_strings, indented, load_json
from repro.report.provenance import StoreProvenance
from repro.report.timeline import Timeline
from repro.verify.codec import CodecError, decode, encode

RESULTS_FORMAT = 1
# Verdicts of a trial that damaged or lost data, whatever the configuration promised.
HARMED = (Verdict.CORRUPT, Verdict.LOST_ACKED, Verdict.EXPECTED_LOSS)


class FailOn(str, enum.Enum):
    """What else makes a run exit 1 (``--fail-on``), besides a broken promise."""

    REGRESSION = "regression"  # the new store harms data significantly more often than the old one
    REPRODUCED = "reproduced"  # a bug hunt: fails when no trial harmed data
    INCONCLUSIVE = "inconclusive"  # a comparison that could not tell: a group inconclusive or underpowered


@dataclass(frozen=True)
class PhaseCall:
    """One phase of a trial as it ran (like pytest's CallInfo): its name, how long it took, and the
    error that ended it ("" when it finished)."""

    name: str
    seconds: float
    error: str = ""


@dataclass(frozen=True)
class TrialRecord:
    """Everything the report says about one trial: report.json's trial object, field by field (the facts'
    codec, repro/verify/facts.py), so a per-trial column is a field here and its value where the trial is
    recorded (repro/pipeline.py). Built in one step from a judgement with ``judged``."""

    id: str
    profile: str
    faults: tuple[str, ...]
    preset: str
    journal_mode: str
    synchronous: str
    seed: int
    verdict: Verdict
    integrity: str
    acked: int
    lost_acked: int
    phantom: int
    indeterminate: int
    duration_s: float
    expected: bool
    promised_safe: bool
    oom_killed: bool | None = None
    exit_code: int | None = None
    detail: str = ""
    artifacts_dir: str | None = None
    replay: str = ""
    store: str = "default"
    sqlite_version: str = ""  # the SQLite the store ran on, from the workload's READY line
    sqlite: str = "system"  # the SQLite asked for: system, a version, or <version>-assisted
    sqlite_source_id: str = ""  # the source id in force (READY), what tells builds of one version apart
    checkpoints: int = 0  # checkpoints the checkpointer hazard ran (0 without it)
    schedule: tuple[str, ...] = ()  # the fault schedule resolved from the seed: a replay must match it
    hazards: tuple[str, ...] = ()  # what the application did wrong all run long (raw-open, dashboard)
    cpus: str = ""  # "pinned to CPU 1" or "unpinned: why" (repro/machine/cpus.py)
    # A trial that started from a given database: the rows it held, how many of them were lost or
    # rewritten (judged like acknowledged writes lost), and how the start was made ("" for an empty disk).
    preexisting: int = 0
    lost_preexisting: int = 0
    start: str = ""
    # The crash-state files kept as evidence, each with its sha256 when it was taken (repro/machine/restart.py).
    evidence: Mapping[str, str] = field(default_factory=dict, hash=False)
    # The scenario as repro.scenario.replay writes it: what `repro replay` rebuilds the trial from
    # (None in reports of older labs, which stored only a command line).
    scenario: Mapping[str, object] | None = field(default=None, hash=False)
    # What happened over time (acknowledged writes, the fault, the disk filling, what was lost), compact.
    timeline: Timeline | None = field(default=None, hash=False)
    phases: tuple[PhaseCall, ...] = ()  # the phases that ran, in order, each with its time and error
    pragmas: Mapping[str, str] = field(default_factory=dict, hash=False)  # read back at READY (READY_PRAGMAS)

    @property
    def harmed(self) -> bool:
        """Corrupted the database or lost acknowledged writes, promised or not."""
        return self.verdict in HARMED

    @property
    def failed(self) -> bool:
        """A real finding: corrupt or lost-acked where the configuration promised otherwise."""
        return not self.expected and self.verdict in (Verdict.CORRUPT, Verdict.LOST_ACKED)

    @property
    def lab_error(self) -> bool:
        return self.verdict is Verdict.ERROR

    @property
    def fault_labels(self) -> tuple[str, ...]:
        """Each fault as reports name it (repro.scenario.FaultSpec.label: ``sigkill@checkpoint``, but ``sigkill``
        for the default trigger), read from the trial's scenario; the bare names for a record without one."""
        from repro.scenario import FaultSpec

        typed = (self.scenario or {}).get("faults")
        if isinstance(typed, list) and len(typed) == len(self.faults):
            try:
                return tuple(FaultSpec.parse(str(text)).label for text in typed)
            except ScenarioError:
                pass  # a report of a lab that spelled faults otherwise: the names it recorded
        return self.faults

    @property
    def faults_label(self) -> str:
        """The faults, and the hazards they ran under: ``sigkill@checkpoint`` or ``sigkill with raw-open+dashboard``."""
        label = "+".join(self.fault_labels) or "none"
        return f"{label} with {'+'.join(self.hazards)}" if self.hazards else label

    @property
    def sqlite_text(self) -> str:
        """The SQLite of the trial as every report shows it: ``3.40.1 (system)``, ``3.53.2``,
        ``3.51.2 assisted`` (the version in force; the one asked for if none was read)."""
        return sqlite_text(self.sqlite, [self.sqlite_version])

    def to_dict(self) -> dict[str, object]:
        return typing.cast(dict[str, object], encode(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TrialRecord:
        """A record read back, every value checked against its field's type (a field an older report lacks
        takes its default); anything else is a ResultsError."""
        try:
            return decode(cls, data)
        except CodecError as exc:
            raise ResultsError(f"bad trial record: {exc}") from None

    @classmethod
    def judged(cls, judgement: Judgement, **given: Any) -> TrialRecord:
        """The record of a judged trial, in one step: the verdict, and the counts of its verification (0 when
        there is none); every other field as given."""
        ver = judgement.verification
        return cls(verdict=judgement.verdict, expected=judgement.expected, promised_safe=judgement.promised_safe,
                   integrity="unknown" if ver is None else ver.health.integrity,
                   acked=0 if ver is None else ver.acked,
                   lost_acked=0 if ver is None else ver.lost_acked,
                   phantom=0 if ver is None else ver.phantom,
                   indeterminate=0 if ver is None else len(ver.indeterminate),
                   preexisting=0 if ver is None or ver.preexisting is None else ver.preexisting.rows,
                   lost_preexisting=0 if ver is None else ver.lost_preexisting,
                   **{"detail": judgement.reason[:500], **given})

    @classmethod
    def from_json(cls, text: str) -> TrialRecord:
        data = load_json(text, "trial record")
        if not isinstance(data, dict):
            raise ResultsError("trial record is not a JSON object")
        return cls.from_dict(data)


@dataclass(frozen=True)
class RunMeta:
    """The run around the trials: its id, seed, command line and environment."""

    run_id: str
    seed: int
    started_at: str
    command: str
    duration_s: float = 0.0
    lab_version: str = ""
    sqlite_version: str = ""
    compare: bool = False  # a matrix: old vs new when it ran exactly two stores
    fail_on: tuple[FailOn, ...] = ()
    shard: str = ""  # "K/N" when this run is one shard of a larger one
    planned: int = 0  # trials in the whole run (all shards); 0: as many as ran
    merged_from: tuple[str, ...] = ()  # run ids of the shards `repro merge` combined
    stores: tuple[StoreProvenance, ...] = ()  # which code each store was (repro/report/provenance.py)
    image: str = ""  # the lab image the machines ran (a foreign store's derived image: run.stores)
    image_id: str = ""  # its engine id (sha256:...), which names the exact build
    starts: Mapping[str, str] = field(default_factory=dict, hash=False)  # each starting database: sha256 of its files

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["fail_on"] = [f.value for f in self.fail_on]
        out["merged_from"] = list(self.merged_from)
        out["stores"] = [store.to_dict() for store in self.stores]
        out["starts"] = dict(self.starts)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RunMeta:
        try:
            return cls(
                run_id=str(data["run_id"]),
                seed=as_int(data["seed"]),
                started_at=str(data["started_at"]),
                command=str(data["command"]),
                duration_s=float(str(data.get("duration_s", 0.0))),
                lab_version=str(data.get("lab_version", "")),
                sqlite_version=str(data.get("sqlite_version", "")),
                compare=bool(data.get("compare", False)),
                fail_on=tuple(FailOn(f) for f in as_strings(data.get("fail_on", []))),
                shard=str(data.get("shard", "")),
                planned=as_int(data.get("planned", 0)),
                merged_from=as_strings(data.get("merged_from", [])),
                stores=tuple(StoreProvenance.from_dict(item) for item in as_list(data.get("stores", []))),
                image=str(data.get("image", "")), image_id=str(data.get("image_id", "")),
                starts=as_digests(data.get("starts", {})),
            )
        except KeyError as exc:
            raise ResultsError(f"run metadata lacks {exc.args[0]!r}") from exc
        except ValueError as exc:
            raise ResultsError(f"bad run metadata: {exc}") from exc


@dataclass(frozen=True)
class RunResult:
    """A whole run: metadata plus one record per trial, in the order they ran."""

    meta: RunMeta
    trials: tuple[TrialRecord, ...]

    def to_dict(self, exit_code: ExitCode) -> dict[str, object]:
        """report.json's content; `exit_code` is the run's, --fail-on included (repro/report/outcome.py)."""
        return {
            "format": RESULTS_FORMAT,
            "run": self.meta.to_dict(),
            "exit_code": int(exit_code),
            "trials": [t.to_dict() for t in self.trials],
        }

    def to_json(self, exit_code: ExitCode) -> str:
        """Indented, with short lists of numbers (a timeline's points) kept on one line."""
        return indented(self.to_dict(exit_code))

    @classmethod
    def from_json(cls, text: str) -> RunResult:
        data = load_json(text, "report")
        if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
            raise ResultsError("not a report.json of this format")
        run, trials = data.get("run"), data.get("trials")
        if not isinstance(run, dict) or not isinstance(trials, list):
            raise ResultsError("report.json lacks run or trials")
        records = []
        for item in trials:
            if not isinstance(item, dict):
                raise ResultsError("a trial record is not an object")
            records.append(TrialRecord.from_dict(item))
        return cls(RunMeta.from_dict(run), tuple(records))


def sqlite_text(asked: str, in_force: Iterable[str]) -> str:
    """How reports name a SQLite: the versions in force, marked system or assisted (see TrialRecord)."""
    version, _, assisted = asked.partition("-")
    seen = ", ".join(sorted({v for v in in_force if v}))
    if version == "system":
        return f"{seen} (system)" if seen else "system"
    return f"{seen or version} assisted" if assisted else seen or version


def exit_code(records: Iterable[TrialRecord]) -> ExitCode:
    """The run's exit status.

    3 (LAB_FAILED) if any trial's verdict is ``error`` -- the run cannot vouch for its
    results, even if another trial failed (that trial is still listed in the reports);
    else 1 (TRIAL_FAILED) if any trial is corrupt or lost-acked where the configuration
    promised otherwise; else 0: every trial as the oracle expects, including positive
    controls that failed and ``expected-loss`` trials. An empty run is a lab failure.
    """
    records = list(records)
    if not records or any(r.lab_error for r in records):
        return ExitCode.LAB_FAILED
    if any(r.failed for r in records):
        return ExitCode.TRIAL_FAILED
    return ExitCode.OK
