"""Benchmark: crash states checked per second on 2 cores, for a ~5 MB store and a ~300-write trace.

For each configuration (journal mode + synchronous, as the lab's presets set them) a store is
filled to about 5 MB by the workload, then 300 more operations are recorded on the lossyfs
daemon (repro/lossyfs, --record, with the workload's marks) -- on this host when it has FUSE
(root, /dev/fuse, Debian's python3-pyfuse3), the same daemon and workload a recording machine
runs. Printed per configuration: the size of each persistence model's state space. Then for the
configurations named by --rate-of, `repro explore`'s checker runs on 2 worker processes over
--budget states per model (a seeded sample where a model is larger; every state where it is
not) and prints:

- states/s, wall clock, and states per worker CPU-second times 2 (what 2 idle cores give; the
  wall figure drops when other work shares the machine -- the load average is printed);
- how many states the probe really ran on (the others looked the same to SQLite: equal files,
  or an equal WAL image) and where the time went (building/keying states, probe, judge);
- materialising states incrementally against rebuilding each from the trace's start.

- with --recovery N (default 2): N states reopened (repro explore --recovery), the time to record each
  reopen and the second level's states/s beside the first level's.

Target: >= 200 states/s on 2 cores. About 3 minutes with the defaults; --per-model times each model alone too.
Usage: python bench/bench_explore.py [--budget N] [--ops N] [--fill N] [--rate-of wal-full,wal-normal]
       [--combined dirs=lazy+data=prefix] [--per-model]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from repro.explore.configs import CONFIGURATIONS as CONFIGS  # noqa: E402
from repro.explore.materialize import Materializer  # noqa: E402
from repro.explore.models import PRESETS, PersistenceModel  # noqa: E402
from repro.explore.runner import explore  # noqa: E402
from repro.explore.space import StateSpace  # noqa: E402
from repro.explore.timeline import Timeline  # noqa: E402
from repro.explore.tracedir import Recording, TraceDir, write_recording  # noqa: E402
from repro.lossyfs.control import DEBIAN_PYTHON, LossyMount, fuse_unavailable_reason  # noqa: E402
from repro.lossyfs.trace import Write  # noqa: E402
from repro.protocol import Tag, format_line, frame, read_frame  # noqa: E402
from repro.scenario import StoreSpec  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = 200.0


def workload(env: dict[str, str], db: pathlib.Path, ops: int, seed: int, offset: int = 0,
             marks: pathlib.Path | None = None) -> list[str]:
    """The lab's workload on this host (Debian's python3, the repository's store); its stdout lines."""
    run_env = {**env, "PYTHONPATH": str(ROOT), "LAB_DB_PATH": str(db), "LAB_OPS": str(ops), "LAB_SEED": str(seed),
               "LAB_OP_OFFSET": str(offset), "LAB_STATUS_PATH": str(db.parent.parent / f"status-{seed}"),
               "LAB_MARK_SOCKET": str(marks) if marks else ""}
    done = subprocess.run([DEBIAN_PYTHON, "-m", "repro.workload"], env=run_env, capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"the workload failed: {done.stderr[-2000:]}")
    return done.stdout.splitlines()


def record(name: str, store: StoreSpec, root: pathlib.Path, fill: int, ops: int, seed: int) -> TraceDir:
    """Fill a store, then record ``ops`` more operations on the lossy mount."""
    backing, mount, out = root / name / "backing", root / name / "mnt", root / name / "trace"
    for d in (backing, mount, out):
        d.mkdir(parents=True)
    env = {**os.environ, **store.environment()}
    filled = workload(env, backing / "state.db", fill, seed + 1)
    with LossyMount(backing, mount, seed=seed, record=out / "trace.jsonl", mark_socket=root / name / "marks.sock"):
        lines = workload(env, mount / "state.db", ops, seed, offset=fill, marks=root / name / "marks.sock")
    write_recording(out, Recording(store_env=store.environment(), source=f"bench/bench_explore.py {name}"),
                    one_log(filled, lines))
    return TraceDir.open(out)


def one_log(fill: list[str], recorded: list[str]) -> list[str]:
    """The two workload runs as one machine's log, as a recording machine leaves it: a boot record, the fill's
    records without its READY, then the recording's, numbered on (the trace's evidence checks refuse two
    READYs and a record number seen twice)."""
    out = [frame("boot", 1, format_line(Tag.BOOT, {"disk_entries": 0, "services": "session-store"}))]
    counts: dict[str, int] = {}
    for first, lines in ((True, fill), (False, recorded)):
        for raw in lines:
            framed = read_frame(raw)
            if framed.line is None or (first and framed.line.tag is Tag.READY):
                continue
            counts[framed.source] = counts.get(framed.source, 0) + 1
            out.append(frame(framed.source, counts[framed.source], raw.rstrip("\r\n").split(" ", 1)[1]))
    return out


def materialize_cost(trace: TraceDir, states: int, scratch: pathlib.Path) -> tuple[float, float]:
    """ms per state: building states forward in one materializer, against a fresh one per state."""
    timeline = Timeline(trace.reader())
    space = StateSpace(timeline, (PersistenceModel.PREFIX,))
    step = max(1, space.total(PersistenceModel.PREFIX) // states)
    picks = list(range(0, space.total(PersistenceModel.PREFIX), step))[:states]
    costs = []
    for fresh in (False, True):
        m = Materializer(timeline, scratch / "inc")
        started = time.perf_counter()
        for index in picks:
            if fresh:
                m = Materializer(timeline, scratch / f"fresh-{index}")
            out = scratch / f"state-{index}"
            m.write(space.spec(PersistenceModel.PREFIX, index), out)
            shutil.rmtree(out)
            if fresh:
                shutil.rmtree(scratch / f"fresh-{index}")
        costs.append((time.perf_counter() - started) * 1000 / len(picks))
    return costs[0], costs[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=1000, help="states per model (default 1000)")
    parser.add_argument("--ops", type=int, default=300, help="operations recorded (default 300)")
    parser.add_argument("--fill", type=int, default=1000, help="operations filling the store first (~5 MB)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="configurations to count states for")
    parser.add_argument("--rate-of", default="wal-full,wal-normal", help="configurations to time")
    parser.add_argument("--combined", default="dirs=lazy+data=prefix",
                        help="models of parts timed beside the presets (comma-separated)")
    parser.add_argument("--per-model", action="store_true", help="also time each model alone (its own sandbox)")
    parser.add_argument("--recovery", type=int, default=2,
                        help="states reopened per timed configuration (crash during recovery; 0: none): the "
                             "second level's states/s beside the first's")
    args = parser.parse_args(argv)
    models = (*PRESETS.values(), *PersistenceModel.parse_list(args.combined))
    reason = fuse_unavailable_reason()
    if reason is not None:
        print(f"cannot record here: {reason}", file=sys.stderr)
        return 2
    from repro.machine import engine

    engine.ensure_image(engine.client(), image=engine.image_name(None))  # the sandbox runs this checkout's checker
    root = pathlib.Path(tempfile.mkdtemp(prefix="bench-explore-"))
    try:
        traces = {}
        print(f"{'configuration':<14} {'db MB':>6} {'writes':>6} {'crash pts':>9} "
              + " ".join(f"{m.value:>12}" for m in models))
        for name in args.configs.split(","):
            trace = traces[name] = record(name, CONFIGS[name], root, args.fill, args.ops, args.seed)
            timeline = Timeline(trace.reader())
            space = StateSpace(timeline, models)
            size = (root / name / "backing" / "state.db").stat().st_size / 1e6
            writes = sum(isinstance(op, Write) for op in timeline.ops)
            print(f"{name:<14} {size:>6.1f} {writes:>6} {len(timeline.points):>9} "
                  + " ".join(f"{space.total(m):>12}" for m in models), flush=True)
        for name in args.rate_of.split(","):
            run = explore(traces[name], models, budget=args.budget, seed=args.seed, jobs=2)
            st = run.stats
            capacity = run.states / (st.cpu_s / 2) if st.cpu_s else 0.0
            print(f"\n{name}: {run.states} states checked ({', '.join(f'{m.model.value} {m.checked}/{m.selection.total}' for m in run.models)})")
            print(f"  wall: {run.seconds:.1f} s = {run.rate:.0f} states/s on 2 workers "
                  f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
            print(f"  CPU: {st.cpu_s:.1f} worker-s = {capacity:.0f} states/s on 2 idle cores  "
                  f"[target >= {TARGET:.0f}: {'met' if max(capacity, run.rate) >= TARGET else 'NOT met'}]")
            print(f"  probed {st.probes} states ({st.probe_s:.1f} s), the rest alike to a probed one; building and "
                  f"keying states {st.materialize_s:.1f} s, judging {st.judge_s:.1f} s; broken promises: "
                  f"{sum(m.broken for m in run.models)}")
            for model in models if args.per_model else ():
                alone = explore(traces[name], (model,), budget=args.budget, seed=args.seed, jobs=2)
                print(f"  {model.value}: {alone.states} states in {alone.seconds:.1f} s = {alone.rate:.0f} states/s "
                      f"(wall, with the sandbox's start), {alone.states / (alone.stats.cpu_s / 2) if alone.stats.cpu_s else 0:.0f} "
                      f"per 2 idle cores", flush=True)
            if args.recovery:
                from repro.explore.reopen import reopen_states
                from repro.scenario import get_profile

                levels = reopen_states(run, count=args.recovery, profile=get_profile("fly-256"),
                                       out=root / f"reopens-{name}", image=engine.image_name(None))
                for level in levels:
                    print(f"  reopen of {level.first.state} ({level.first.reason}): recorded in "
                          f"{level.record_seconds:.1f} s; {level.checked} second-level states in {level.seconds:.1f} s "
                          f"= {level.rate:.0f} states/s (first level: {run.rate:.0f}); made worse: {level.made_worse}",
                          flush=True)
            inc, fresh = materialize_cost(traces[name], 40, root / f"mat-{name}")
            print(f"  materialising a prefix state: {inc:.1f} ms incrementally, {fresh:.1f} ms rebuilt from the "
                  f"trace's start ({fresh / inc:.1f}x)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
