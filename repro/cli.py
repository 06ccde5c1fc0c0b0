"""The `repro` command: argv -> a command (repro/commands.py); errors -> one line and an exit code. Nothing else."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from repro import commands
from repro.commands import DEFAULT_FAULTS, DEFAULT_TRIALS, HUNT
from repro.errors import EngineError, ExitCode, LabError, ScenarioError
from repro.scenario.profiles import DEFAULT_PROFILE


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line and exit code 2 (never a traceback)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ScenarioError(message)


def _store_args(p: argparse.ArgumentParser, many: bool) -> None:
    if many:
        p.add_argument("--presets", default="ns506", help="comma-separated: ns506, legacy, durable")
        p.add_argument("--store-paths", default="",
                       help="comma-separated directories holding other hermes_state versions (old,new)")
        p.add_argument("--sqlites", default="system",
                       help="comma-separated SQLite libraries: system (the image's own) or versions the lab "
                            "builds, e.g. 3.51.2,3.53.2 (see `repro sqlite list`)")
    else:
        p.add_argument("--preset", default="ns506", help="ns506 (default), legacy or durable")
        p.add_argument("--store-path", default=None, help="a directory holding another hermes_state package")
        p.add_argument("--sqlite", default="system",
                       help="the SQLite the store loads: system (the image's own, default) or a version the lab "
                            "builds, e.g. 3.53.2 (see `repro sqlite list`)")
    p.add_argument("--sqlite-assisted", action="store_true",
                   help="the lab's assisted build of each version: a short sleep in every WAL checkpoint, "
                        "once it has read the WAL header, widens the WAL-reset race (labelled 'assisted'; never the default)")
    p.add_argument("--wal-autocheckpoint", type=int, default=None, metavar="PAGES",
                   help="override the store's PRAGMA wal_autocheckpoint (SQLite's default: 1000 pages)")
    p.add_argument("--journal-mode", default=None, help="override: wal, delete, truncate, persist, memory, off")
    p.add_argument("--synchronous", default=None, help="override: off, normal, full, extra")
    p.add_argument("--checkpoint-mode", default=None,
                   help="override the store's periodic WAL checkpoint: passive (default) or truncate")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help="trials per scenario")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (printed; default: random)")
    p.add_argument("--jobs", type=int, default=1, help="trials run at once")
    p.add_argument("--out", default=None, help="report directory (default runs/<timestamp>)")
    p.add_argument("--json", default=None, help="also write the JSON report to this file")
    p.add_argument("--image", default=None, help="the lab image (default hermes-lab:latest)")
    p.add_argument("--rate", type=float, default=0.0, help="workload operations per second (default: flat out)")
    p.add_argument("--mix", default="", help="workload op mix, e.g. append=80,tokens=8,search=6,create=3,end=3")
    p.add_argument("--message-size", default="", help="message sizes MIN:MAX (default 200:20k)")
    p.add_argument("--linger", type=int, default=0, metavar="MS",
                   help="a slow shutdown: after the stop signal the workload writes on for MS ms before "
                        "closing; past the profile's kill timeout (Fly: 5 s) the machine is SIGKILLed")
    p.add_argument("--hazard", action="append", default=None,
                   help="what the application does wrong, all run long; repeat to combine: "
                        "raw-open[=N] (the gateway opens and closes its live db file every N writes, "
                        "dropping its POSIX locks), dashboard[=MS] (a second process opens, reads and "
                        "closes the store every MS ms), cron[=MS] (a second process writes one operation "
                        "every MS ms through its own store instance), checkpointer[=MS] (a third process "
                        "checkpoints the WAL, PASSIVE and TRUNCATE alternately, every MS ms, default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="repro", description="Reproduce SQLite crash and corruption reports on Fly-like machines.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="trials of one scenario (no arguments: the NS-506 reproduction)")
    run.add_argument("--profile", default=DEFAULT_PROFILE, help=f"{DEFAULT_PROFILE} (default), fly-512, fly-1g")
    run.add_argument("--fault", action="append", default=None,
                     help="a fault; repeat to compose (disk-fill then sigterm). "
                          "NAME[:OPTIONS][@acks=N|@random[=MS]|@in-write[=N]|@on-write[=N]]; "
                          "power-loss takes the options lazy-dirs,torn-writes")
    _store_args(run, many=False)
    _common(run)
    run.add_argument("--trial-id", default=None, help="run only this trial id (replay)")

    matrix = sub.add_parser("matrix", help="profiles x faults x stores, side by side")
    matrix.add_argument("--profiles", default=DEFAULT_PROFILE)
    matrix.add_argument("--faults", default=",".join("+".join(c) for c in DEFAULT_FAULTS),
                        help="comma-separated fault combinations, + composes (disk-fill+sigterm)")
    _store_args(matrix, many=True)
    _common(matrix)

    hunt = sub.add_parser("hunt", help="the WAL-reset hunt: writers and a checkpointer flat out on each SQLite, "
                                       "the machine killed after --duration, the database judged")
    hunt.add_argument("--profiles", default=HUNT.profile, help=f"default {HUNT.profile} (its 256 MB disk holds "
                                                                 "minutes of writing flat out)")
    hunt.add_argument("--duration", type=int, default=HUNT.duration_s, metavar="S",
                      help=f"seconds of writing and checkpointing before the machine is killed "
                           f"(default {HUNT.duration_s})")
    _store_args(hunt, many=True)
    _common(hunt)
    hunt.set_defaults(sqlites=HUNT.sqlites, wal_autocheckpoint=HUNT.wal_autocheckpoint,
                      message_size=HUNT.message_size)

    replay = sub.add_parser("replay", help="run one trial of an earlier run again, with its seed")
    replay.add_argument("run_dir")
    replay.add_argument("trial_id")

    sub.add_parser("clean", help="remove every container and volume with the lab's label")
    image = sub.add_parser("image", help="the lab image")
    image.add_argument("action", choices=["build"])
    sub.add_parser("doctor", help="what the lab needs and what is missing")
    sqlite = sub.add_parser("sqlite", help="the SQLite builds: versions available and built")
    sqlite.add_argument("action", choices=["list"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(args_list)
        return int(_dispatch(args, args_list))
    except ScenarioError as exc:
        print(f"repro: error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except EngineError as exc:
        print(f"repro: engine: {exc}", file=sys.stderr)
        return ExitCode.LAB_FAILED
    except LabError as exc:
        print(f"repro: lab failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return ExitCode.LAB_FAILED
    except Exception as exc:  # an engine error the lab did not expect: still one line, exit 3
        if type(exc).__module__.split(".")[0] not in ("docker", "requests", "urllib3"):
            raise
        print(f"repro: engine: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        return ExitCode.LAB_FAILED
    except KeyboardInterrupt:
        print("repro: interrupted; the run's containers and volumes were removed", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    if args.command == "clean":
        return commands.clean()
    if args.command == "image":
        return commands.build_image()
    if args.command == "doctor":
        return commands.doctor()
    if args.command == "sqlite":
        return commands.sqlite_list()
    if args.command == "replay":
        return commands.replay(args, argv)
    return commands.run(args, argv)


if __name__ == "__main__":
    sys.exit(main())
