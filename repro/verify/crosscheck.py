"""Checks that a trial's evidence agrees with itself before any verdict rests on it.

The ledger is the workload's word, written in the same process as the store under test. So
before it is compared with the database, the lab checks it against what it can see apart
from it (ARCHITECTURE.md, threat model):

- every source's records are numbered 1..n with none missing, none twice, and none damaged
  (a record cut short is allowed only as its source's last: the crash cut it);
- the machine's first record (``LAB BOOT``) is there: the engine's log kept its beginning;
- exactly one READY, from the gateway, when the workload ran at all;
- the fault agent's count of acknowledged writes at the instant it fired (read from the status
  board, a second witness) is not more than the ledger holds;
- the journal mode READY reported is the one the restarted machine's fresh connection reads
  from the database file's header (WAL is a property of the file; process faults only, since
  a power cut may legitimately lose the un-synced header change).

A trial whose evidence fails any of these is an ``error`` that says what disagreed, never a
verdict. Stdlib only.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Iterable, Sequence

from repro.errors import TrialError
from repro.ledger import Ledger
from repro.protocol import Damage, Tag, read_frame
from repro.verify.facts import ProbeFacts

BOOT_SOURCE = "boot"
GATEWAY_SOURCE = "gateway"


@dataclass(frozen=True)
class SourceRecords:
    """What one source put on the channel: the numbers seen, whole or damaged."""

    source: str
    whole: tuple[int, ...]
    damaged: tuple[tuple[int, Damage], ...] = ()

    def problems(self) -> list[str]:
        found: list[str] = []
        seen = [*self.whole, *(seq for seq, _ in self.damaged)]
        last = max(seen, default=0)
        twice = sorted(seq for seq, n in collections.Counter(seen).items() if n > 1)
        if twice:
            found.append(f"{self.source}: record(s) {_ranges(twice)} appear more than once")
        missing = sorted(set(range(1, last + 1)) - set(seen))
        if missing:
            found.append(f"{self.source}: record(s) {_ranges(missing)} of {last} missing")
        for seq, damage in self.damaged:
            if damage is Damage.TORN and seq == last:
                continue  # cut by the crash: the operation it belonged to stays indeterminate
            found.append(f"{self.source}: record {seq} is {damage.value}"
                         + (" (other bytes were glued on)" if damage is Damage.LONGER else ""))
        return found


def channel_records(lines: Iterable[str]) -> dict[str, SourceRecords]:
    """Every source's records in a machine's log, by source."""
    whole: dict[str, list[int]] = {}
    damaged: dict[str, list[tuple[int, Damage]]] = {}
    for raw in lines:
        framed = read_frame(raw)
        if not framed.source:
            continue
        whole.setdefault(framed.source, [])
        if framed.damage is None:
            whole[framed.source].append(framed.seq)
        else:
            damaged.setdefault(framed.source, []).append((framed.seq, framed.damage))
    return {s: SourceRecords(s, tuple(seqs), tuple(damaged.get(s, ()))) for s, seqs in whole.items()}


def channel_problems(lines: Sequence[str], *, boot: bool = True) -> list[str]:
    """What is wrong with a machine log's records as a whole: gaps, repeats, damage, and (``boot``: the
    log is the machine's, not a ledger file of the workload's own) a lost beginning."""
    records = channel_records(lines)
    found = [p for source in sorted(records) for p in records[source].problems()]
    first = records.get(BOOT_SOURCE)
    if boot and (first is None or 1 not in first.whole):
        found.insert(0, f"the machine's first record (LAB BOOT) is not in its log ({len(lines)} lines kept): "
                        "the log lost its beginning")
    return found


@dataclass(frozen=True)
class Witnesses:
    """What the lab saw apart from the ledger, to hold it against."""

    agent_acks: tuple[int, ...] = ()  # each fault agent's count of acknowledged writes when it fired
    facts: ProbeFacts | None = None
    page_cache_lost: bool = False  # a power cut: the header may legitimately lag READY


def ledger_problems(ledger: Ledger, lines: Iterable[str], seen: Witnesses = Witnesses()) -> list[str]:
    """Where the ledger read from ``lines`` disagrees with itself and with the other witnesses."""
    found: list[str] = []
    readies = [framed.source for framed in map(read_frame, lines)
               if framed.line is not None and framed.line.tag is Tag.READY]
    if len(readies) > 1:
        found.append(f"{len(readies)} READY records ({', '.join(readies)}): the store's settings are ambiguous")
    elif readies and readies[0] != GATEWAY_SOURCE:
        found.append(f"READY came from {readies[0]!r}, not the gateway")
    elif not readies and ledger.operations:
        found.append(f"{len(ledger.operations)} operations but no READY: the settings in force are unknown")
    acked = sum(1 for op in ledger.operations if op.acked and op.is_write)
    for count in seen.agent_acks:
        if count > acked:
            found.append(f"the fault agent counted {count} acknowledged writes when it fired, "
                         f"the ledger holds {acked}: acknowledgements are missing from the ledger")
    facts = seen.facts
    claimed = str(ledger.ready.get("journal_mode", "")).lower()
    if facts is not None and facts.journal_mode and claimed and not seen.page_cache_lost and facts.probe_error is None:
        read_back = facts.journal_mode.lower()
        if (claimed == "wal") != (read_back == "wal"):
            found.append(f"READY said journal_mode={claimed}, the database file's header says {read_back}")
    return found


def disagreement(problems: Sequence[str]) -> str:
    """One line for a trial's error: the first problems, and how many more."""
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "the evidence disagrees with itself: " + "; ".join(problems[:3]) + more


def require(problems: Sequence[str]) -> None:
    """A trial whose evidence disagrees with itself cannot be judged: a TrialError (an `error` verdict)
    that says what disagreed, every problem past the third as a note."""
    if problems:
        error = TrialError(disagreement(problems))
        for problem in problems[3:20]:
            error.add_note(problem)
        raise error


def _ranges(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``1-3, 7`` (at most five runs shown)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    shown = [f"{a}-{b}" if a != b else str(a) for a, b in runs[:5]]
    return ", ".join(shown) + (f" and {len(runs) - 5} more runs" if len(runs) > 5 else "")
