"""One record per trial, the run around them, their JSON form, and the run's exit code."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields
from typing import Iterable, Mapping, Sequence

from repro.errors import ExitCode, ScenarioError
from repro.oracle.verdicts import Judgement, Verdict
from repro.report.jsonfile import ResultsError, as_digests, as_int, as_list, as_strings, indented, load_json
from repro.report.provenance import StoreProvenance
from repro.report.timeline import Timeline

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

    @classmethod
    def from_dict(cls, data: object) -> PhaseCall:
        if not isinstance(data, dict):
            raise ResultsError("a phase is not an object")
        return cls(str(data["name"]), float(str(data["seconds"])), str(data.get("error", "")))


@dataclass(frozen=True)
class TrialRecord:
    """Everything the report says about one trial."""

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
    oom_killed: bool | None
    exit_code: int | None
    duration_s: float
    expected: bool
    promised_safe: bool
    detail: str
    artifacts_dir: str | None
    replay: str
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
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["faults"] = list(self.faults)
        out["schedule"] = list(self.schedule)
        out["hazards"] = list(self.hazards)
        out["verdict"] = self.verdict.value
        out["scenario"] = None if self.scenario is None else dict(self.scenario)
        out["evidence"] = dict(self.evidence)
        out["pragmas"] = dict(self.pragmas)
        out["timeline"] = None if self.timeline is None else self.timeline.to_dict()
        out["phases"] = [{"name": p.name, "seconds": p.seconds, "error": p.error} for p in self.phases]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TrialRecord:
        try:
            faults, scenario, timeline = data["faults"], data.get("scenario"), data.get("timeline")
            if not isinstance(faults, list):
                raise ResultsError("faults is not a list")
            if scenario is not None and not isinstance(scenario, dict):
                raise ResultsError("scenario is not an object")
            return cls(
                id=str(data["id"]),
                profile=str(data["profile"]),
                faults=tuple(str(f) for f in faults),
                preset=str(data["preset"]),
                journal_mode=str(data["journal_mode"]),
                synchronous=str(data["synchronous"]),
                seed=as_int(data["seed"]),
                verdict=Verdict(str(data["verdict"])),
                integrity=str(data["integrity"]),
                acked=as_int(data["acked"]),
                lost_acked=as_int(data["lost_acked"]),
                phantom=as_int(data["phantom"]),
                indeterminate=as_int(data["indeterminate"]),
                oom_killed=None if data.get("oom_killed") is None else bool(data["oom_killed"]),
                exit_code=None if data.get("exit_code") is None else as_int(data["exit_code"]),
                duration_s=float(str(data["duration_s"])),
                expected=bool(data["expected"]),
                promised_safe=bool(data["promised_safe"]),
                detail=str(data.get("detail", "")),
                artifacts_dir=None if data.get("artifacts_dir") is None else str(data["artifacts_dir"]),
                replay=str(data.get("replay", "")),
                store=str(data.get("store", "default")),
                sqlite_version=str(data.get("sqlite_version", "")),
                sqlite=str(data.get("sqlite", "system")),
                sqlite_source_id=str(data.get("sqlite_source_id", "")),
                checkpoints=as_int(data.get("checkpoints", 0)),
                schedule=as_strings(data.get("schedule", [])),
                hazards=as_strings(data.get("hazards", [])),
                cpus=str(data.get("cpus", "")),
                preexisting=as_int(data.get("preexisting", 0)),
                lost_preexisting=as_int(data.get("lost_preexisting", 0)),
                start=str(data.get("start", "")),
                evidence=as_digests(data.get("evidence", {})),
                scenario=scenario,
                timeline=None if timeline is None else Timeline.from_dict(timeline),
                phases=tuple(PhaseCall.from_dict(p) for p in as_list(data.get("phases", []))),
                pragmas=as_digests(data.get("pragmas", {})),
            )
        except KeyError as exc:
            raise ResultsError(f"trial record lacks {exc.args[0]!r}") from exc
        except ValueError as exc:
            if isinstance(exc, ResultsError):
                raise
            raise ResultsError(f"bad trial record: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> TrialRecord:
        data = load_json(text, "trial record")
        if not isinstance(data, dict):
            raise ResultsError("trial record is not a JSON object")
        return cls.from_dict(data)


def record_trial(
    *,
    id: str,
    profile: str,
    faults: Sequence[str],
    preset: str,
    journal_mode: str,
    synchronous: str,
    seed: int,
    judgement: Judgement,
    duration_s: float,
    replay: str,
    oom_killed: bool | None = None,
    exit_code: int | None = None,
    artifacts_dir: str | None = None,
    store: str = "default",
    hazards: Sequence[str] = (),
    scenario: Mapping[str, object] | None = None,
    start: str = "",
    sqlite: str = "system",
    sqlite_source_id: str = "",
    checkpoints: int = 0,
) -> TrialRecord:
    """Build a record from a judgement; counts come from its verification (0 when there is none)."""
    ver = judgement.verification
    integrity = "unknown" if ver is None else ver.health.integrity
    return TrialRecord(
        id=id,
        profile=profile,
        faults=tuple(faults),
        preset=preset,
        journal_mode=journal_mode,
        synchronous=synchronous,
        seed=seed,
        verdict=judgement.verdict,
        integrity=integrity,
        acked=0 if ver is None else ver.acked,
        lost_acked=0 if ver is None else ver.lost_acked,
        phantom=0 if ver is None else ver.phantom,
        indeterminate=0 if ver is None else len(ver.indeterminate),
        oom_killed=oom_killed,
        exit_code=exit_code,
        duration_s=round(duration_s, 3),
        expected=judgement.expected,
        promised_safe=judgement.promised_safe,
        detail=judgement.reason[:500],
        artifacts_dir=artifacts_dir,
        replay=replay,
        store=store,
        hazards=tuple(hazards),
        scenario=scenario,
        preexisting=0 if ver is None or ver.preexisting is None else ver.preexisting.rows,
        lost_preexisting=0 if ver is None else ver.lost_preexisting,
        start=start,
        sqlite=sqlite,
        sqlite_source_id=sqlite_source_id,
        checkpoints=checkpoints,
    )


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
