"""One checker of crash states, run inside the explore sandbox: batches in on stdin, verdicts out on a channel of its own (stdlib only).

Run as ``python3 -m repro.explore.worker TRACE_DIR --models prefix,torn [--store-mount DIR]
[--no-images]`` by ``docker exec`` in the sandbox (repro/explore/sandbox.py): the store under
test is imported here, as uid 1000 in a container with no network and no Docker socket, never in
the lab's own process. Before anything of the store can run, the worker moves its record channel
(repro/explore/wire.py) to a private descriptor and points descriptor 1 at stderr, so what the
store prints (or a process it forks inherits as stdout) cannot reach the channel by accident.

Records: one hello ``{"ready": {...}}`` once the trace is loaded; then for each request
``{"batch": [[model, index], ...]}`` one reply ``{"results": [...], "stats": {...}}``. The worker
ends at the end of its stdin. A failure of the worker itself is a reply ``{"error": "..."}``
and exit status 3; the lab turns it into a lab error, never a verdict.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from repro.explore.blockcheck import BlockChecker
    from repro.explore.check import Checker, ChunkStats, StateResult

EXIT_FAILED = 3


def _private_channel() -> int:
    """A descriptor that is the original stdout; descriptor 1 (and sys.stdout) become stderr."""
    channel = os.dup(1)  # not inheritable: a program the store executes does not get it
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    channel = _private_channel()
    parser = argparse.ArgumentParser(prog="python3 -m repro.explore.worker")
    parser.add_argument("trace_dir")
    parser.add_argument("--models", required=True)
    parser.add_argument("--store-mount", default=None)
    parser.add_argument("--no-images", action="store_true")
    parser.add_argument("--scratch", default=None)
    parser.add_argument("--recovered", default=None, help="block-level states: where the recoverer left their files")
    args = parser.parse_args(argv)

    from repro.explore.wire import ChannelClosed, Reader, Writer, result_to_json, stats_to_json

    out = Writer(os.fdopen(channel, "wb", buffering=0))
    try:
        from repro.explore.check import Checker, ChunkStats
        from repro.explore.models import PersistenceModel
        from repro.explore.tracedir import TraceDir

        quiet = logging.getLogger("hermes_state")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        checker: Checker | BlockChecker
        if args.recovered:
            from repro.explore.blockcheck import BlockChecker
            from repro.explore.blockspace import BlockModel

            checker = BlockChecker(TraceDir.open(args.trace_dir), tuple(BlockModel(m) for m in args.models.split(",")),
                                   args.recovered, args.scratch, store_mount=args.store_mount)
        else:
            from repro.explore.second import read_first

            trace = TraceDir.open(args.trace_dir)
            first = read_first(trace.path)  # a reopen's trace: its states are judged where its first state was
            checker = Checker(trace, PersistenceModel.parse_list(args.models), args.scratch,
                              images=not args.no_images, store_mount=args.store_mount,
                              judged_at=first.at if first is not None else None)
    except Exception as exc:
        out.send({"error": f"the checker could not start: {type(exc).__name__}: {exc}"[:2000]})
        traceback.print_exc()
        return EXIT_FAILED
    import sqlite3

    requests = Reader(lambda n: os.read(0, n))
    try:
        # SIGTERM (docker stop, the lab ending a worker) unwinds like an exception: the scratch goes with it
        signal.signal(signal.SIGTERM, _terminated)
        out.send({"ready": {"pid": os.getpid(), "uid": os.getuid(), "sqlite_version": sqlite3.sqlite_version}})
        while True:
            try:
                request = requests.next()
            except ChannelClosed:  # the end of stdin: the lab is done
                return 0
            stats = ChunkStats()
            cpu = time.process_time()
            results = _check_batch(checker, request, stats)
            stats.cpu_s = time.process_time() - cpu
            out.send({"results": [result_to_json(r) for r in results], "stats": stats_to_json(stats)})
    except Exception as exc:
        traceback.print_exc()
        out.send({"error": f"the checker failed: {type(exc).__name__}: {exc}"[:2000]})
        return EXIT_FAILED
    finally:
        checker.close()


def _check_batch(checker: Checker | BlockChecker, request: dict[str, Any], stats: ChunkStats) -> list[StateResult]:
    """One batch's verdicts: file-level states with what materialising them cost; block-level ones with what the
    recoverer made of each (``request["recovered"]``)."""
    from repro.explore.blockcheck import BlockChecker
    from repro.explore.blockspace import BlockModel
    from repro.explore.models import PersistenceModel

    if isinstance(checker, BlockChecker):
        return [checker.check(BlockModel(model), int(index), bool(got["mounted"]), str(got["error"]), stats,
                              str(got.get("dir", "")))
                for (model, index), got in zip(request["batch"], request["recovered"], strict=True)]
    before = dataclasses.replace(checker.materializer.stats)
    results = [checker.check(PersistenceModel.parse(model), int(index), stats) for model, index in request["batch"]]
    after = checker.materializer.stats
    stats.cloned_bytes = after.cloned_bytes - before.cloned_bytes
    stats.patched_bytes = after.patched_bytes - before.patched_bytes
    stats.advanced_bytes = after.advanced_bytes - before.advanced_bytes
    return results


if __name__ == "__main__":
    raise SystemExit(main())
