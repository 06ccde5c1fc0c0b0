"""The `repro` command: argv -> a command (repro/commands.py, repro/finished.py, repro/upkeep.py); errors -> one line and an exit code. Nothing else."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Iterable, Sequence

from repro import commands, finished, options, upkeep
from repro.commands import DEFAULT_TRIALS, HUNT, MATRIX_FAULTS
from repro.errors import EngineError, ExitCode, LabError, ScenarioError
from repro.explore.command import DEFAULT_OPS, MAX_OPS
from repro.explore.arguments import add_filesystem_args, add_recording_args, add_recovery_args, add_search_args
from repro.faults import FAULTS
from repro.ledger import SHORT_MIX_WORDS
from repro.report.records import FailOn
from repro.scenario import (CHECKPOINT_MODES, DEFAULT_PROFILE, HAZARD_DEFAULTS, JOURNAL_MODES, OWN_SETTINGS,
                            POWER_LOSS_OPTIONS, PRESETS, PROFILES, SYNCHRONOUS, HazardName, StoreSpec, Trigger)
from repro.scenario.stores import SYSTEM_SQLITE
from repro.workload.spec import DEFAULT_MIX, DEFAULT_SIZES, OPS

# An error line is one line of reasonable length, whatever the user typed (what it echoes is
# capped where it is made: repro.errors.shown); this is the last guard.
MAX_LINE = 600


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line and exit code 2 (never a traceback)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ScenarioError(message)


# Help that names what the code knows is built from the code's registries, never typed by hand: a
# preset, profile, fault, trigger, hazard, persistence model or mix word added there shows here.
def _listed(names: Iterable[str], default: str | None = None) -> str:
    """``a (default), b, c``: the registry's names, the default marked."""
    return ", ".join(f"{n} (default)" if n == default else n for n in names)


_HAZARD_HELP = {
    HazardName.RAW_OPEN: "the gateway opens and closes its live db file every N writes, dropping its POSIX locks",
    HazardName.DASHBOARD: "a second process opens, reads and closes the store every MS ms",
    HazardName.CRON: "a second process writes one operation every MS ms through its own store instance",
    HazardName.CHECKPOINTER: "a third process checkpoints the WAL, PASSIVE and TRUNCATE alternately, every MS ms",
}
_HAZARD_UNIT = {HazardName.RAW_OPEN: "N"}


def _hazards_help() -> str:
    return "; ".join(f"{h.value}[={_HAZARD_UNIT.get(h, 'MS')}] ({_HAZARD_HELP[h]}, default {HAZARD_DEFAULTS[h]})"
                     for h in HazardName)


_TRIGGER_FORM = {Trigger.ACKS: "@acks=N", Trigger.RANDOM: "@random[=MS]"}  # the rest: @NAME[=N]


def _fault_help() -> str:
    triggers = "|".join(_TRIGGER_FORM.get(t, f"@{t.value}[=N]") for t in Trigger)
    faults = ", ".join(f"{f.value} (@{fault.default_trigger.value})" for f, fault in FAULTS.items())
    return (f"a fault, NAME[:OPTIONS][{triggers}]; repeat to compose (disk-fill then sigterm). Faults, with "
            f"their default trigger: {faults}. power-loss takes the options {','.join(POWER_LOSS_OPTIONS)} "
            "(record: keep its trace for `repro explore`)")


def _profile_arg(p: argparse.ArgumentParser, many: bool, default: str = DEFAULT_PROFILE) -> None:
    names = _listed(PROFILES, default)
    if many:
        p.add_argument("--profiles", default=default, help=f"comma-separated machine profiles: {names}")
    else:
        p.add_argument("--profile", default=default, help=f"the machine profile: {names}")


def _disk_size_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--disk-size", default=None, metavar="SIZE", help="the machine's data disk instead of the profile's")


def _store_args(p: argparse.ArgumentParser, many: bool, releases: bool = True) -> None:
    """The store options; ``releases``: also git refs, requirements and the starting disk (not for explore)."""
    presets = (f"{_listed(PRESETS, StoreSpec().preset)} ({OWN_SETTINGS}: no HERMES_STATE_* settings, "
               "a foreign store's default)")
    if many:
        p.add_argument("--presets", default=None, help=f"comma-separated store presets: {presets}")
        p.add_argument("--store-paths", default="",
                       help="comma-separated store directories (old,new), each holding a hermes_state package "
                            "or a hermes_state.py module with what it imports")
        p.add_argument("--store-refs", default="", metavar="REPO@OLD,REPO@NEW",
                       help="comma-separated releases from git: a repository (path or URL) @ a tag, branch or commit")
        p.add_argument("--sqlites", default=SYSTEM_SQLITE,
                       help=f"comma-separated SQLite libraries: {SYSTEM_SQLITE} (the image's own) or versions the "
                            "lab builds, e.g. 3.51.2,3.53.2 (see `repro sqlite list`)")
    else:
        p.add_argument("--preset", default=None, help=f"the store preset: {presets}")
        p.add_argument("--store-path", default=None, help="a store directory: a hermes_state package or a "
                                                          "hermes_state.py module, and what it imports beside it")
        if releases:
            p.add_argument("--store-ref", default=None, metavar="REPO@REV",
                           help="a release from git: a repository (path or URL) @ a tag, branch or commit")
        p.add_argument("--sqlite", default=SYSTEM_SQLITE,
                       help=f"the SQLite the store loads: {SYSTEM_SQLITE} (the image's own, default) or a version "
                            "the lab builds, e.g. 3.53.2 (see `repro sqlite list`)")
    p.add_argument("--sqlite-assisted", action="store_true",
                   help="the lab's assisted build of each version: a short sleep in every WAL checkpoint, "
                        "once it has read the WAL header, widens the WAL-reset race (labelled 'assisted'; never the default)")
    p.add_argument("--wal-autocheckpoint", type=int, default=None, metavar="PAGES",
                   help="override the store's PRAGMA wal_autocheckpoint (SQLite's default: 1000 pages)")
    p.add_argument("--journal-mode", default=None, help=f"override: {_listed(JOURNAL_MODES)}")
    p.add_argument("--synchronous", default=None, help=f"override: {_listed(SYNCHRONOUS)}")
    p.add_argument("--checkpoint-mode", default=None,
                   help=f"override the store's periodic WAL checkpoint: {_listed(CHECKPOINT_MODES, 'passive')}")
    if releases:
        _release_args(p)


def _release_args(p: argparse.ArgumentParser) -> None:
    """Third-party requirements of a foreign store, and what the disk starts with."""
    p.add_argument("--store-requirements", default=None, metavar="FILE|auto",
                   help="third-party packages the store needs (a requirements file, or auto: the store's "
                        "requirements.txt or pyproject.toml dependencies), downloaded on this host and installed "
                        "into an image derived from the lab's")
    p.add_argument("--from-db", default=None, metavar="PATH",
                   help="start every trial from a copy of this database (with its -wal and -shm; read, never written)")
    p.add_argument("--initial-size", default=None, metavar="SIZE",
                   help="start every trial from a database the store grows to SIZE (e.g. 300m), made once per "
                        "size, seed and store and cached")
    _disk_size_arg(p)
    p.add_argument("--fs", action="append", default=None, metavar="KIND[:OPTION,...]",
                   help="the data disk as a kernel filesystem (ext4, xfs, btrfs[:data=...,nobarrier]) over the lossy one; "
                        "power loss only, recovered by the kernel at restart; repeated: a matrix axis")
    p.add_argument("--disk-fill-to", type=int, default=None, metavar="PCT",
                   help="fill the disk to PCT%% with a filler file before the workload starts")


def _workload_args(p: argparse.ArgumentParser) -> None:
    """How the gateway-like workload drives the store (run, matrix, hunt and explore's recording)."""
    p.add_argument("--rate", type=float, default=0.0, help="workload operations per second (default: flat out)")
    p.add_argument("--mix", default="", metavar="OP=WEIGHT,...",
                   help=f"workload op mix over the store's operations {_listed(OPS)} (default "
                        f"{DEFAULT_MIX.replace(',', ', ')}; "
                        f"the short words {', '.join(SHORT_MIX_WORDS)} are accepted too)")
    p.add_argument("--message-size", dest="sizes", default="", metavar="MIN:MAX",
                   help=f"message sizes in bytes, k or m (default {DEFAULT_SIZES[0]}:{DEFAULT_SIZES[1]})")


def _image_arg(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument("--image", default=None, help=f"the lab image{what} (default: $HERMES_LAB_IMAGE, else hermes-lab:latest)")


def _trials(text: str) -> int | str:
    """--trials: a whole number, or ``auto`` (commands.trial_count turns it into one)."""
    if text.strip().lower() != commands.AUTO_TRIALS and not text.strip().lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"takes a whole number or {commands.AUTO_TRIALS}, not {text!r}")
    return text.strip().lower() if text.strip().lower() == commands.AUTO_TRIALS else int(text)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=_trials, default=DEFAULT_TRIALS, metavar="N|auto",
                   help=f"trials per scenario (default {DEFAULT_TRIALS}); auto: as many as bound a rate below "
                        f"--target-rate when none of them harms data")
    p.add_argument("--target-rate", default=None, metavar="PCT", help="with --trials auto: the rate to bound "
                   "(default 5%%): n = ceil(ln(0.05) / ln(1 - rate)), whose one-sided 95%% Clopper-Pearson bound is "
                   "below it when none harms data (5%%: 59)")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (printed; default: random)")
    p.add_argument("--jobs", type=int, default=1, help="trials run at once (default 1)")
    p.add_argument("--out", default=None, help="report directory (default runs/<timestamp>-<run id>); "
                                                "must be empty or new")
    p.add_argument("--force", action="store_true",
                   help="reuse a non-empty --out that holds an earlier lab report: its reports and trials/ are deleted")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the JSON report to this file")
    _fail_on(p)
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="run only the K-th of N deterministic parts (needs --seed; `repro merge` combines them)")
    _image_arg(p)
    _workload_args(p)
    p.add_argument("--linger", dest="linger_ms", type=int, default=0, metavar="MS",
                   help="a slow shutdown: after the stop signal the workload writes on for MS ms before "
                        "closing; past the profile's kill timeout (Fly: 5 s) the machine is SIGKILLed")
    p.add_argument("--hazard", action="append", default=None, metavar="NAME[=VALUE]",
                   help=f"what the application does wrong, all run long; repeat to combine: {_hazards_help()}")


_FAIL_ON_HELP = {
    FailOn.REGRESSION: "a matrix of two stores: the new one harms data significantly more often",
    FailOn.REPRODUCED: "a bug hunt: no trial harmed data",
    FailOn.INCONCLUSIVE: "a matrix of two stores: a group the counts cannot tell (p >= 0.05, or too few trials)",
}


def _fail_on(p: argparse.ArgumentParser) -> None:
    conditions = "; ".join(f"{c.value} ({_FAIL_ON_HELP[c]})" for c in FailOn)
    p.add_argument("--fail-on", action="append", default=None, metavar="CONDITION",
                   help=f"also exit 1 when a condition holds; repeatable: {conditions}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="repro", description="Reproduce SQLite crash and corruption reports on Fly-like machines.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND",
                                help="what to do; `repro COMMAND --help` for its options")

    run = sub.add_parser("run", help="trials of one scenario (no arguments: the NS-506 reproduction)",
                         description="Trials of one scenario (no arguments: the NS-506 reproduction).")
    _profile_arg(run, many=False)
    run.add_argument("--fault", action="append", default=None, metavar="FAULT", help=_fault_help())
    _store_args(run, many=False)
    _common(run)
    run.add_argument("--trial-id", default=None, help="run only this trial id (replay)")

    matrix = sub.add_parser("matrix", help="profiles x faults x stores, side by side",
                            description="Profiles x faults x stores, side by side; two stores end with a comparison.")
    _profile_arg(matrix, many=True)
    matrix.add_argument("--faults", default=MATRIX_FAULTS,
                        help="comma-separated fault combinations, + composes (disk-fill+sigterm); each as --fault "
                             "takes it")
    _store_args(matrix, many=True)
    _common(matrix)

    hunt = sub.add_parser("hunt", help="the WAL-reset hunt: writers and a checkpointer flat out on each SQLite, "
                                       "the machine killed after --duration, the database judged")
    _profile_arg(hunt, many=True, default=HUNT.profile)
    hunt.add_argument("--duration", type=int, default=HUNT.duration_s, metavar="S",
                      help=f"seconds of writing and checkpointing before the machine is killed "
                           f"(default {HUNT.duration_s})")
    _store_args(hunt, many=True)
    _common(hunt)
    hunt.set_defaults(sqlites=HUNT.sqlites, wal_autocheckpoint=HUNT.wal_autocheckpoint,
                      sizes=HUNT.sizes)

    replay = sub.add_parser("replay", help="run one trial of an earlier run again, with its seed")
    replay.add_argument("run_dir", help="the earlier run's report directory (it holds report.json)")
    replay.add_argument("trial_id", help="the trial's id, as the run's report names it")

    explore = sub.add_parser("explore", help="check every crash state of a recorded trace (or record one first)")
    explore.add_argument("trace_dir", nargs="?", help="a trace directory (trace.jsonl, machine.log, recording.json)")
    explore.add_argument("--record", action="store_true",
                         help="record a trace first: one machine, the workload for --ops operations, a clean stop")
    _profile_arg(explore, many=False)
    _store_args(explore, many=False, releases=False)
    explore.add_argument("--ops", type=int, default=DEFAULT_OPS,
                         help=f"operations to record (default {DEFAULT_OPS}, at most {MAX_OPS:,})")
    _workload_args(explore)
    add_filesystem_args(explore)
    add_recording_args(explore)
    _disk_size_arg(explore)
    add_search_args(explore)
    add_recovery_args(explore)
    explore.add_argument("--seed", type=int, default=None, help="the workload's and the sample's seed (printed)")
    explore.add_argument("--jobs", type=int, default=2,
                         help="checkers in the explore sandbox (default 2, at most 64)")
    explore.add_argument("--out", default=None, help="report directory (default runs/explore-<timestamp>-<run id>); "
                                                     "must be empty or new; with --materialize, where the state's "
                                                     "files go")
    explore.add_argument("--force", action="store_true",
                         help="reuse a non-empty --out that holds an earlier lab report: its reports and trace/ are "
                              "deleted")
    _image_arg(explore, " of the recording machine and of the sandbox that checks the states")
    explore.add_argument("--materialize", metavar="STATE", default=None,
                         help="write one state (MODEL:INDEX, as the report names it) to --out, and judge it")

    merge = sub.add_parser("merge", help="combine the reports of a run's shards (--shard K/N) into one")
    merge.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="the shards' report directories, each once")
    merge.add_argument("--out", required=True, help="the merged report directory")
    merge.add_argument("--force", action="store_true",
                       help="reuse a non-empty --out that holds an earlier lab report, as `repro run --force` does")
    _fail_on(merge)

    report = sub.add_parser("report", help="re-render report.md, junit.xml and report.html from report.json; "
                                           "with --fail-on, gate the finished run again and exit as it would")
    report.add_argument("run_dir", help="a run's report directory (it holds report.json)")
    _fail_on(report)

    clean = sub.add_parser("clean", help="remove the lab's containers and volumes (refuses live runs of other "
                                         "processes unless --force); --caches, --images: its caches and images")
    which = clean.add_mutually_exclusive_group()
    which.add_argument("--run", default=None, metavar="ID",
                       help="only this run's (its id is in its first line; with --caches/--images: the entries it made)")
    which.add_argument("--stale", action="store_true", help="only runs whose owning process is gone")
    which.add_argument("--force", action="store_true", help="everything with the lab's label, live runs too")
    clean.add_argument("--caches", action="store_true",
                       help="instead: the cache entries under $HERMES_LAB_CACHE (SQLite builds, starting databases, "
                            "store trees and mirrors, wheels) that no container uses")
    clean.add_argument("--images", action="store_true",
                       help="instead: the stores' derived images (and untagged lab images) that no container uses")
    clean.add_argument("--all", action="store_true", help="with --images: the tagged lab images too, the current one "
                                                         "among them (its build needs apt)")
    clean.add_argument("--older-than", default=None, metavar="AGE",
                       help="with --caches/--images: only what was last used (an image: made) more than AGE ago "
                            "(7d, 12h, 30m)")
    clean.add_argument("--dry-run", action="store_true", help="with --caches/--images: list, remove nothing")
    image = sub.add_parser("image", help="the lab image")
    image.add_argument("action", choices=["build"], help="build: build the image (run builds it when missing or stale)")
    sub.add_parser("doctor", help="what the lab needs and what is missing")
    sqlite = sub.add_parser("sqlite", help="the SQLite builds: versions available and built")
    sqlite.add_argument("action", choices=["list"], help="list: the versions available and built")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, a CI cancel or systemd send): the same orderly end as Ctrl-C."""


class _Interrupts:
    """SIGINT and SIGTERM: the first raises (KeyboardInterrupt, Terminated) for an orderly end -- queued trials
    dropped, running machines removed, then the run's containers and volumes; a second one ends the process
    at once (the orderly end can wait seconds on trials and the engine). Nothing is left behind either way:
    the run's reaper (repro/machine/reaper.py) sees this process die and removes whatever it owned."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            _exit_now(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _exit_now(signum: int) -> None:
    """End the process now, without unwinding or joining threads (os._exit), with one line on stderr."""
    restore = "\x1b[?25h" if sys.stderr.isatty() else ""  # a progress display may have hidden the cursor
    with contextlib.suppress(OSError):
        os.write(2, f"{restore}\nrepro: interrupted again: exiting now; the run's reaper removes its containers "
                    "and volumes\n".encode())
    os._exit(128 + signum)


def _say(prefix: str, text: str) -> None:
    line = " ".join(text.split())  # one line, whatever the message held
    if len(line) > MAX_LINE:
        line = line[:MAX_LINE] + "..."
    print(f"repro: {prefix}{line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    main_thread = threading.current_thread() is threading.main_thread()
    interrupts = _Interrupts()
    previous = {sig: signal.signal(sig, interrupts) for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        return int(_dispatch(parse(args_list), args_list))
    except ScenarioError as exc:
        _say("error: ", str(exc))
        return ExitCode.BAD_INPUT
    except EngineError as exc:
        _say("engine: ", str(exc))
        return ExitCode.LAB_FAILED
    except LabError as exc:
        _say("lab failed: ", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return ExitCode.LAB_FAILED
    except Exception as exc:  # an engine error the lab did not expect: still one line, exit 3
        if type(exc).__module__.split(".")[0] not in ("docker", "requests", "urllib3"):
            raise
        _say("engine: ", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        return ExitCode.LAB_FAILED
    except KeyboardInterrupt as exc:
        kind = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"repro: {kind}; the run's containers and volumes were removed", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    finally:
        if not interrupts.count:  # else a further signal still ends the process at once (threads joined at exit)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def parse(argv: Sequence[str]) -> options.Options:
    """argv -> the command's typed, frozen options (the one place a Namespace becomes them)."""
    return options.from_namespace(build_parser().parse_args(list(argv)))


def _dispatch(opts: options.Options, argv: list[str]) -> int:
    if isinstance(opts, options.CleanOptions):
        return upkeep.clean(opts)
    if isinstance(opts, options.ReplayOptions):
        return commands.replay(opts, argv)
    if isinstance(opts, options.ExploreOptions):
        return commands.explore(opts, argv)
    if isinstance(opts, options.MergeOptions):
        return finished.merge(opts)
    if isinstance(opts, options.ReportOptions):
        return finished.report(opts)
    if isinstance(opts, options.RunOptions):
        return commands.run(opts, argv)
    if opts.command == "image":
        return upkeep.build_image()
    if opts.command == "doctor":
        return upkeep.doctor()
    return upkeep.sqlite_list()


if __name__ == "__main__":
    sys.exit(main())
