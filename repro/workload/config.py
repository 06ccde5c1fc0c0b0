"""The workload's settings: one object for both sides of its environment contract (LAB_* variables).

The lab writes them with ``to_env`` into the machine; the workload reads them back with
``from_env``. A setting added here is added to both sides at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


from repro.errors import ScenarioError, shown
from repro.ledger import SHORT_MIX_WORDS, OpKind

DEFAULT_MIX = "append_message=80,update_token_counts=8,search_messages=6,create_session=3,end_session=3"
# The mix names each store operation by its own name (repro/ledger.py); the short words of earlier labs
# (append, tokens, ...) are still accepted and read as those names.
OPS = tuple(kind.value for kind in OpKind)


class WorkloadConfigError(ScenarioError):
    """A LAB_* setting that cannot be used."""


@dataclass(frozen=True)
class WorkloadConfig:
    """How the gateway-like workload drives the store."""

    seed: int = 0
    db_path: str = "/opt/data/state.db"
    store_mount: str = ""
    max_ops: int = 0  # 0: until stopped
    rate: float = 0.0  # operations per second; 0: as fast as the store allows
    mix: tuple[tuple[str, int], ...] = ()
    min_size: int = 200
    max_size: int = 20_000
    linger_ms: int = 0  # keep writing this long after the stop signal (a slow shutdown)
    status_path: str = "/run/lab/status"
    ledger_file: str = ""  # also append the ledger here (never on the data disk under test)
    # Hold after READY until the fault agent says it is watching, so that "after N acks" means N:
    # a flat-out workload would otherwise run on for the agent's start-up time on a one-CPU machine.
    hold: bool = False
    # A hazard, not a fault: every N operations the gateway open()s and close()s its own live
    # database file with raw calls (a size probe), which drops this process's POSIX locks.
    raw_open_every: int = 0
    # The cron hazard runs a second copy of this workload in its own process: role "cron" (no
    # READY line, never held), its ledger indices start above op_offset so that the two ledgers
    # merge into one, and its sessions differ because its seed does.
    role: str = "gateway"
    op_offset: int = 0
    # Recording (repro explore): the lossyfs daemon's mark socket. After READY the workload sends
    # the mark "ready", and after each ok ledger line "ack <index>", so that every position of the
    # recorded trace maps to the ledger prefix acknowledged before it. Empty: no marks.
    mark_socket: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "WorkloadConfig":
        try:
            cfg = cls(
                seed=int(env.get("LAB_SEED", "0")),
                db_path=env.get("LAB_DB_PATH", "/opt/data/state.db"),
                store_mount=env.get("LAB_STORE_MOUNT", ""),
                max_ops=int(env.get("LAB_OPS", "0")),
                rate=float(env.get("LAB_RATE", "0")),
                mix=parse_mix(env.get("LAB_MIX", DEFAULT_MIX)),
                min_size=int(env.get("LAB_MIN_SIZE", "200")),
                max_size=int(env.get("LAB_MAX_SIZE", "20000")),
                linger_ms=int(env.get("LAB_LINGER_MS", "0")),
                status_path=env.get("LAB_STATUS_PATH", "/run/lab/status"),
                ledger_file=env.get("LAB_LEDGER_FILE", ""),
                hold=env.get("LAB_HOLD", "0") == "1",
                raw_open_every=int(env.get("LAB_RAW_OPEN_EVERY", "0")),
                role=env.get("LAB_ROLE", "gateway"),
                op_offset=int(env.get("LAB_OP_OFFSET", "0")),
                mark_socket=env.get("LAB_MARK_SOCKET", ""),
            )
        except ValueError as exc:
            raise WorkloadConfigError(str(exc)) from exc
        if cfg.role not in ("gateway", "cron"):
            raise WorkloadConfigError(f"LAB_ROLE must be gateway or cron, not {shown(cfg.role)}")
        if not 1 <= cfg.min_size <= cfg.max_size:
            raise WorkloadConfigError("LAB_MIN_SIZE must be >= 1 and <= LAB_MAX_SIZE")
        return cfg


    def to_env(self) -> dict[str, str]:
        """The LAB_* variables that ``from_env`` reads back into an equal config."""
        return {
            "LAB_SEED": str(self.seed), "LAB_DB_PATH": self.db_path, "LAB_STORE_MOUNT": self.store_mount,
            "LAB_OPS": str(self.max_ops), "LAB_RATE": repr(float(self.rate)),
            "LAB_MIX": ",".join(f"{op}={weight}" for op, weight in self.mix) or DEFAULT_MIX,
            "LAB_MIN_SIZE": str(self.min_size), "LAB_MAX_SIZE": str(self.max_size),
            "LAB_LINGER_MS": str(self.linger_ms), "LAB_STATUS_PATH": self.status_path,
            "LAB_LEDGER_FILE": self.ledger_file, "LAB_HOLD": "1" if self.hold else "0",
            "LAB_RAW_OPEN_EVERY": str(self.raw_open_every), "LAB_ROLE": self.role,
            "LAB_OP_OFFSET": str(self.op_offset), "LAB_MARK_SOCKET": self.mark_socket,
        }


def parse_mix(text: str) -> tuple[tuple[str, int], ...]:
    """``append_message=80,update_token_counts=10`` -> (("append_message", 80), ("update_token_counts", 10));
    a short word (append=80) reads as the operation's name; unknown ops are errors."""
    mix: list[tuple[str, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        word, sep, weight = part.partition("=")
        kind = OpKind.from_mix_word(word)
        if not sep or kind is None:
            raise WorkloadConfigError(f"bad mix entry {shown(part)}; ops are {', '.join(OPS)} "
                                      f"(or {', '.join(SHORT_MIX_WORDS)})")
        weight = weight.strip()
        if not (weight.isascii() and weight.isdigit() and len(weight) <= 9):
            raise WorkloadConfigError(f"mix entry {shown(part)}: the weight must be a whole number from 0 to "
                                      "999999999")
        value = int(weight)
        mix.append((kind.value, value))
    if not any(w for _, w in mix) or dict(mix).get(OpKind.APPEND_MESSAGE.value, 0) == 0:
        raise WorkloadConfigError(f"the mix needs a positive {OpKind.APPEND_MESSAGE.value} weight")
    return tuple(mix)
