"""Benchmark: hermes_state `append_message` on the lossy mount against the plain data disk, per preset.

Measured INSIDE a lab machine, as issue 5 asks: a `fly-256` ConstrainedHost with FUSE rights
(1 CPU: pinned to one host CPU and capped by quota, 256 MB, the data disk a size-capped tmpfs
volume), the lossyfs daemon
started by its s6 service exactly as for a power-loss trial (seeded, default background
writeback), and repro.lossyfs.bench run in the machine as the workload user. That module opens
one store per side -- /opt/data/plain on the tmpfs disk, /opt/data/lossy on the mount -- for each
preset (ns506 = WAL+NORMAL, legacy = WAL + SQLite's default FULL, durable = WAL+FULL) and
alternates timed rounds between the sides within one run; the daemon and the bench share the
machine's one CPU. Printed: median appends/s of each side and the ratio lossy/plain.
Target: ratio >= 0.25 wherever synchronous=FULL (2).

Every lab machine is pinned to one host CPU (repro/machine/cpus.py), as a 1-vCPU VM is: with a quota
alone the workload and the daemon ran on two host CPUs and each FUSE round trip paid a
cross-CPU wakeup (measured 0.20 instead of 0.28 for FULL).

Needs the Docker engine, /dev/fuse on the engine's host and the lab image (`--build` rebuilds it
first; the image carries repro/lossyfs, so rebuild after changing it). About 1 minute with the
defaults. Usage: python bench/bench_lossyfs.py [--build] [--seconds S] [--rounds N] [--size BYTES]
[--presets ns506,legacy,durable] [--lossy-args "--torn-writes --lazy-dirs"] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from repro.machine import engine  # noqa: E402
from repro.machine.container import DATA_DIR, LOSSY_MOUNT, ConstrainedHost  # noqa: E402
from repro.machine import services  # noqa: E402
from repro.machine.labels import IMAGE  # noqa: E402

TARGET_FULL = 0.25
SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="rebuild the lab image first")
    parser.add_argument("--profile", default="fly-256")
    parser.add_argument("--presets", default="ns506,legacy,durable")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per timed round (default 0.5)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per side (default 5)")
    parser.add_argument("--size", type=int, default=1024, help="message content bytes (default 1024)")
    parser.add_argument("--seed", type=int, default=0, help="the lossyfs daemon's seed")
    parser.add_argument("--lossy-args", default="", help="extra daemon flags, e.g. --torn-writes")
    args = parser.parse_args(argv)
    if not pathlib.Path("/dev/fuse").exists():
        print("no /dev/fuse on this host: the lossy mount cannot run", file=sys.stderr)
        return 2
    cli = engine.client()
    if args.build or not engine.image_present(cli, IMAGE):
        engine.build_image(cli)
    plain = f"{DATA_DIR}/plain"
    with ConstrainedHost(args.profile, fuse=True, role="bench") as machine:  # __enter__ starts the machine
        services.start_lossyfs(machine, args.seed, args.lossy_args)
        machine.exec_checked(["mkdir", "-p", plain], user="1000:1000")
        p = machine.profile
        cpus = f"{p.cpus:g} CPU, pinned"
        print(f"in-machine bench: profile {p.name} ({cpus}, {p.memory >> 20} MB, tmpfs disk "
              f"{p.disk >> 20} MB), lossyfs seed {args.seed} {args.lossy_args or '(default flags)'}, "
              f"{args.rounds} x {args.seconds:g}s alternating rounds per side, {args.size} B messages")
        out = machine.exec_checked(["python3", "-m", "repro.lossyfs.bench", "--plain", plain, "--lossy", LOSSY_MOUNT,
                                    "--presets", args.presets, "--seconds", str(args.seconds),
                                    "--rounds", str(args.rounds), "--size", str(args.size)], user="1000:1000")
    rows = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("BENCH ")]
    print(f"{'preset':<8} {'sync':<7} {'plain/s':>9} {'lossy/s':>9} {'ratio':>6}   rounds plain | lossy")
    worst_full = float("inf")
    for row in rows:
        sync = SYNC_NAMES.get(row["synchronous"], str(row["synchronous"]))
        if row["synchronous"] >= 2:
            worst_full = min(worst_full, row["ratio"])
        print(f"{row['preset']:<8} {sync:<7} {row['plain']:>9.0f} {row['lossy']:>9.0f} {row['ratio']:>6.2f}   "
              f"{' '.join(f'{r:.0f}' for r in row['plain_rounds'])} | "
              f"{' '.join(f'{r:.0f}' for r in row['lossy_rounds'])}")
    if worst_full == float("inf"):
        print("no preset ran with synchronous >= FULL")
        return 0
    verdict = "meets" if worst_full >= TARGET_FULL else "MISSES"
    print(f"lowest ratio with synchronous >= FULL: {worst_full:.2f} -- {verdict} the >= {TARGET_FULL:.2f} target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
