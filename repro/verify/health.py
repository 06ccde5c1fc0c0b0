"""The file's physical and structural health as the restarted machine found it (stdlib only): integrity,
foreign keys, FTS, read errors, orphans, and the restarted store itself. Part of the diff (repro/verify/diff.py)."""

from __future__ import annotations

from dataclasses import dataclass

from repro.verify.facts import CheckStatus, ProbeFacts


@dataclass(frozen=True)
class Health:
    """Physical and structural state of the file, and whether the restarted store came up.

    ``problems`` lists every finding (integrity, foreign keys, FTS, read errors, orphans,
    the store failing to open, repairing the file or failing its own health check); the
    facts themselves stay in ProbeFacts."""

    integrity: str
    integrity_ok: bool
    fk_violations: int | None
    orphan_messages: int
    problems: tuple[str, ...]

    @property
    def damaged(self) -> bool:
        return bool(self.problems)


def health(facts: ProbeFacts) -> Health:
    """Summarise integrity, foreign keys, FTS, doctor, store start-up and read errors."""
    problems: list[str] = []
    empty = _empty_database(facts)
    if not facts.exists:
        integrity, integrity_ok = "missing", True  # a missing file is loss, not damage
    elif empty:
        integrity, integrity_ok = "ok (empty: no schema)", True  # likewise: loss, not damage
    elif facts.integrity.status is CheckStatus.OK:
        integrity, integrity_ok = "ok", True
    else:
        first = facts.integrity.messages[0] if facts.integrity.messages else facts.integrity.status.value
        integrity, integrity_ok = f"{facts.integrity.status.value}: {first}", False
        problems.append(f"integrity_check {integrity}")
    if facts.fk_violations:
        problems.append(f"foreign_key_check: {facts.fk_violations} violation(s)")
    elif facts.exists and facts.foreign_keys.status is CheckStatus.ERROR:
        problems.append(f"foreign_key_check error: {_first(facts.foreign_keys.messages)}")
    if facts.fts.bad:
        problems.append(f"FTS integrity {facts.fts.status.value}: {_first(_not_ok(facts.fts.messages))}")
    read_errors = tuple(e for e in (facts.messages_error, facts.sessions_error) if e)
    problems += [f"read error: {e}" for e in read_errors if facts.exists and not empty]
    session_ids = {s.id for s in facts.sessions}
    orphans = 0
    if facts.sessions_error is None:
        orphans = sum(1 for m in facts.messages if m.session_id not in session_ids)
        if orphans:
            problems.append(f"{orphans} message(s) whose session does not exist")
    store = facts.store
    if facts.exists and store.attempted and not store.opened and not store.import_failed:
        problems.append(f"the restarted store cannot open the database: {store.error}")
    if store.healed is not None:
        problems.append(f"the restarted store had to repair the database: {store.healed}")
    if store.doctor.status is CheckStatus.FAILED:
        problems.append(f"store health check failed: {_first(store.doctor.messages)}")
    return Health(integrity=integrity, integrity_ok=integrity_ok, fk_violations=facts.fk_violations,
                  orphan_messages=orphans, problems=tuple(problems))


def _empty_database(facts: ProbeFacts) -> bool:
    """A sound database without the store's tables (a power cut can roll a WAL + NORMAL store back to
    before its schema's commit): its rows are lost, as a missing file's, but it is not damage -- the
    store creates the schema again. One table gone is damage: one transaction creates both."""
    return (facts.exists and facts.integrity.status is CheckStatus.OK
            and all(e is not None and "no such table" in e for e in (facts.messages_error, facts.sessions_error)))


def _first(messages: tuple[str, ...]) -> str:
    return messages[0] if messages else "(no detail)"


def _not_ok(messages: tuple[str, ...]) -> tuple[str, ...]:
    bad = tuple(m for m in messages if not m.endswith(": ok"))
    return bad or messages
