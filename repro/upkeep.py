"""The lab's housekeeping commands: clean (by owner; caches and images), image build, doctor, sqlite list -- and reaping dead runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from typing import TYPE_CHECKING

from repro.errors import EngineError, ExitCode, ScenarioError, shown

if TYPE_CHECKING:
    from docker.client import DockerClient

    from repro.options import CleanOptions

# How many runs a refusal of `repro clean` names before "and N more".
LISTED_RUNS = 5


def clean(opts: CleanOptions) -> int:
    """--run ID: that run's objects; --stale: runs whose owner is gone; --force: everything; plain:
    everything, unless a run of another process is (or may be) alive -- then nothing, exit 2."""
    from repro.machine import engine, reaper
    from repro.machine.owner import HostView

    if opts.caches or opts.images:
        return evict(opts)
    if opts.all or opts.dry_run or opts.older_than is not None:
        raise ScenarioError("--all, --dry-run and --older-than go with --caches or --images")
    cli = engine.client()
    if opts.run:
        result = engine.cleanup(cli, run_id=opts.run)
        print(f"removed {result.containers} container(s) and {result.volumes} volume(s) of run {shown(opts.run)}")
        return ExitCode.OK
    plan = reaper.plan_clean(reaper.group_runs(reaper.lab_objects(cli), HostView.here()),
                             stale_only=opts.stale, force=opts.force)
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


_AGE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """``--older-than``: 7d, 12h, 30m or 90s, in seconds."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise ScenarioError(f"--older-than takes an age such as 7d, 12h, 30m or 90s, not {shown(text)}")
    return float(int(match.group(1)) * _UNITS[match.group(2)])


def _ago(seconds: float) -> str:
    for unit, scale in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= scale:
            return f"{int(seconds // scale)} {unit} ago"
    return "just now"


def _kept(kept: list[tuple[str, str]]) -> str:
    """'; kept 3: 2 used recently, hermes-lab:latest (the current lab image: --all removes it)' from (name, reason)."""
    if not kept:
        return ""
    reasons: dict[str, list[str]] = {}
    for name, reason in kept:
        reasons.setdefault(reason, []).append(name)
    parts = [f"{names[0]} ({reason})" if len(names) == 1 else f"{len(names)} {reason}" for reason, names in reasons.items()]
    return f"; kept {len(kept)}: " + ", ".join(parts)


def evict(opts: CleanOptions) -> int:
    """--caches: the cache entries under the cache root; --images: the derived images (and, --all, the tagged
    lab images); each unless a container uses it (or, --older-than, it is recent). Refused, like plain
    clean, while a run of another process is alive: it may be about to use any of them -- except with --run,
    which names the one run whose derived images go (the engine never removes an image a container uses)."""
    from repro import caches
    from repro.machine import engine, images, reaper
    from repro.machine.labels import IMAGE
    from repro.machine.owner import HostView
    from repro.sqlite.build import cache_root

    if opts.stale or opts.force:
        raise ScenarioError("--caches and --images remove no containers: give them without --stale or --force "
                            "(--run ID: the cache entries and derived images that run made)")
    if opts.all and not opts.images:
        raise ScenarioError("--all goes with --images (it also removes the tagged lab images)")
    older_than = parse_age(opts.older_than) if opts.older_than is not None else None
    cli = engine.client()
    refused = reaper.plan_clean(reaper.group_runs(reaper.lab_objects(cli), HostView.here())).refused
    if refused and not opts.dry_run and not opts.run:  # --run: that run's only (kept while a container uses one)
        listed = "; ".join(g.describe() for g in refused[:LISTED_RUNS])
        raise ScenarioError(f"{len(refused)} run(s) of other processes are alive or cannot be told dead ({listed}); "
                            "they may be about to use any cache entry or image: nothing removed (`--dry-run` lists "
                            "what would go)")
    now = time.time()
    verb = "would remove" if opts.dry_run else "removed"
    failures = 0
    if opts.caches:
        root = cache_root()
        entries, foreign = caches.scan(root)
        if opts.run:  # a run's: the entries it made (caches.record_made), whoever uses them since
            mine = caches.made_by(root, opts.run)
            entries, foreign = [e for e in entries if e.path in mine], []
        mounted = [m.get("Source", "") for c in cli.api.containers(all=True) for m in c.get("Mounts") or []]
        plan = caches.plan_caches(entries, now=now, used=caches.in_use(entries, mounted), older_than=older_than,
                                  foreign=foreign)
        for entry in plan.remove:
            print(f"  {entry.kind.value:<18} {entry.path.relative_to(root)!s:<50} {caches.human(entry.bytes):>9}  "
                  f"used {_ago(now - entry.used)}")
        failed = [] if opts.dry_run else caches.remove(plan.remove)
        for entry, why in failed:
            print(f"  not removed: {entry.path}: {why}")
        gone = [e for e in plan.remove if e not in {f for f, _ in failed}]
        failures += len(failed)
        print(f"{verb} {len(gone)} cache entr{'y' if len(gone) == 1 else 'ies'} "
              f"({caches.human(sum(e.bytes for e in gone))}) under {root}"
              + _kept([(str(k.entry.path.relative_to(root)), k.reason) for k in plan.kept])
              + (f"; left alone {len(plan.foreign)} path(s) the lab did not make" if plan.foreign else ""))
    if opts.images:
        from repro.source.wheels import MADE_BY_LABEL

        scope = [f"{MADE_BY_LABEL}={opts.run}"] if opts.run else []  # a run's: the derived images it built
        image_plan = images.plan_images(images.lab_images(cli, scope), current=IMAGE, everything=opts.all, now=now,
                                        older_than=older_than)
        for image in image_plan.remove:
            print(f"  {image.kind:<18} {image.name:<50} {caches.human(image.bytes):>9}  made {_ago(now - image.created)}")
        refused_images = [] if opts.dry_run else images.remove_images(cli, image_plan.remove)
        for image, why in refused_images:
            print(f"  not removed: {image.name}: {why}")
        gone_images = [i for i in image_plan.remove if i not in {r for r, _ in refused_images}]
        failures += len(refused_images)
        print(f"{verb} {len(gone_images)} image(s) ({caches.human(sum(i.bytes for i in gone_images))})"
              + _kept([(k.image.name, k.reason) for k in image_plan.kept]))
    if refused and opts.dry_run:
        print(f"(a real run would refuse: {len(refused)} run(s) of other processes are alive or cannot be told dead)")
    return ExitCode.LAB_FAILED if failures else ExitCode.OK


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



def cache_sizes() -> str:
    """The cache root and what each kind of entry there takes: `repro doctor`'s line."""
    from repro import caches
    from repro.sqlite.build import cache_root

    root = cache_root()
    entries, _ = caches.scan(root)
    kinds = ", ".join(f"{kind.value} {count} / {caches.human(size)}" for kind, (count, size)
                      in sorted(caches.sizes(entries).items(), key=lambda kv: -kv[1][1]))
    return (f"{root}: {caches.human(sum(e.bytes for e in entries))}" + (f" ({kinds})" if kinds else "")
            + "; `repro clean --caches` removes the unused")


def doctor() -> int:
    from repro.caches import human
    from repro.machine import engine, images, limits
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
        derived = [i for i in images.lab_images(cli) if i.kind == images.STORE_IMAGE]
        checks.append(("store images", True, f"{len(derived)} derived image(s) of stores' requirements, "
                       f"{human(sum(i.bytes for i in derived))} of their own; `repro clean --images` removes "
                       "the unused", False))
    except EngineError as exc:
        checks.append(("engine", False, str(exc), True))
    compose = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True) \
        if shutil.which("docker") else None
    checks.append(("compose v2", bool(compose and compose.returncode == 0),
                   compose.stdout.strip() if compose and compose.returncode == 0 else "`docker compose` missing", True))
    from repro.sqlite.runtime import system_check

    checks.append(system_check(sqlite_cli, IMAGE))
    checks.append(("caches", True, cache_sizes(), False))
    try:
        fuse = limits.has_device("/dev/fuse")
    except EngineError:
        fuse = False
    checks.append(("/dev/fuse", fuse, "present on the engine's host (power-loss trials)" if fuse
                   else "missing on the engine's host: no power-loss trials", False))
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
