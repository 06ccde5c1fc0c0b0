"""The lab's housekeeping commands: clean (by owner), image build, doctor, sqlite list -- and reaping dead runs."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

from repro.errors import EngineError, ExitCode, ScenarioError, shown

if TYPE_CHECKING:
    from docker.client import DockerClient

# How many runs a refusal of `repro clean` names before "and N more".
LISTED_RUNS = 5


def clean(args: argparse.Namespace) -> int:
    """--run ID: that run's objects; --stale: runs whose owner is gone; --force: everything; plain:
    everything, unless a run of another process is (or may be) alive -- then nothing, exit 2."""
    from repro.machine import engine, reaper
    from repro.machine.owner import HostView

    cli = engine.client()
    if args.run:
        result = engine.cleanup(cli, run_id=args.run)
        print(f"removed {result.containers} container(s) and {result.volumes} volume(s) of run {shown(args.run)}")
        return ExitCode.OK
    plan = reaper.plan_clean(reaper.group_runs(reaper.lab_objects(cli), HostView.here()),
                             stale_only=args.stale, force=args.force)
    if plan.refused:
        listed = "; ".join(g.describe() for g in plan.refused[:LISTED_RUNS])
        more = f"; and {len(plan.refused) - LISTED_RUNS} more" if len(plan.refused) > LISTED_RUNS else ""
        raise ScenarioError(f"{len(plan.refused)} run(s) of other processes are alive or cannot be told dead "
                            f"({listed}{more}); nothing removed: `repro clean --stale` removes only dead runs', "
                            "`--run ID` one run's, `--force` everything")
    if plan.everything:
        result = engine.cleanup(cli)
        print(f"removed {result.containers} container(s) and {result.volumes} volume(s), every run's")
        return ExitCode.OK
    containers, volumes = reaper.remove_groups(cli, plan.remove)
    print(f"removed {containers} container(s) and {volumes} volume(s) of {len(plan.remove)} run(s) whose owner "
          f"is gone" + (f"; kept {len(plan.kept)} run(s) alive or of unknown owner" if plan.kept else ""))
    return ExitCode.OK


def reap_dead_runs(cli: DockerClient) -> str:
    """What dead runs left (their reaper died too): removed at the start of every run. A note, or ""."""
    from repro.machine import reaper

    stale = reaper.stale_runs(cli)
    if not stale:
        return ""
    containers, volumes = reaper.remove_groups(cli, stale)
    return (f"removed {containers} container(s) and {volumes} volume(s) left by {len(stale)} dead run(s): "
            + ", ".join(g.run_id for g in stale[:LISTED_RUNS]))


def build_image() -> int:
    from repro.machine import engine

    built = engine.build_image()
    print(f"image {built.image} ({built.image_id}) on {built.base} [{built.base_origin}], "
          f"context {built.context[:12]}")
    return ExitCode.OK



def doctor() -> int:
    from repro.machine import engine
    from repro.machine.labels import IMAGE

    checks: list[tuple[str, bool, str, bool]] = []  # name, ok, detail, required
    sqlite_cli: object = None  # the engine, when the image is there to ask for its own SQLite
    try:
        cli = engine.client()
        info = cli.info()
        checks.append(("engine", True, f"Docker {info.get('ServerVersion')}", True))
        mem = bool(info.get("MemoryLimit"))
        checks.append(("memory cgroup", mem, f"cgroup v{info.get('CgroupVersion', '?')}, memory limit support "
                       + ("yes" if mem else "no"), True))
        swap = bool(info.get("SwapLimit"))
        checks.append(("swap limit", swap, "memory+swap can be capped" if swap else
                       "the engine cannot cap swap: machines may swap", False))
        state = engine.image_state(engine.image_labels(cli, IMAGE), engine.context.digest(
            engine.context.find_sources(), engine.BASE_IMAGE))
        fresh = state in (engine.ImageState.CURRENT, engine.ImageState.FOREIGN)
        checks.append(("image", fresh, f"{IMAGE} {state.value}" + ("" if fresh else
                       ": `repro run` builds it, or run `repro image build`"), False))
        sqlite_cli = cli if engine.image_present(cli, IMAGE) else None
    except EngineError as exc:
        checks.append(("engine", False, str(exc), True))
    compose = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True) \
        if shutil.which("docker") else None
    checks.append(("compose v2", bool(compose and compose.returncode == 0),
                   compose.stdout.strip() if compose and compose.returncode == 0 else "`docker compose` missing", True))
    from repro.sqlite.runtime import system_check

    checks.append(system_check(sqlite_cli, IMAGE))
    fuse = os.path.exists("/dev/fuse")
    checks.append(("/dev/fuse", fuse, "present (power-loss trials)" if fuse else "missing: no power-loss trials", False))
    missing = False
    for name, ok, detail, required in checks:
        mark = "ok  " if ok else ("MISS" if required else "warn")
        print(f"{mark} {name:<14} {detail}")
        missing = missing or (required and not ok)
    return ExitCode.LAB_FAILED if missing else ExitCode.OK


def sqlite_list() -> int:
    """The SQLite versions the lab can build (checked-in index) or has built (cache), and the builds."""
    from repro import sqlite as lab_sqlite
    from repro.sqlite.build import sqlite_cache

    for line in lab_sqlite.listing():
        print(line)
    print(f"cache: {sqlite_cache()}; `--sqlite VERSION` builds any other version a better-sqlite3 release ships")
    return ExitCode.OK
