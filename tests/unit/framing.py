"""Test helper: machine logs written by hand, framed as the evidence channel frames them (repro/protocol.py)."""

from __future__ import annotations

import itertools
from typing import Iterable

from repro.protocol import frame, read_frame

_SOURCES = {"LAB BOOT ": "boot", "FINISH ": "finish-session-store", "LOSSYFS ": "lossyfs"}


def framed(lines: Iterable[str], source: str = "gateway") -> list[str]:
    """Each line that is a record body (``TAG {json}``) framed and numbered within its source, as written:
    ``LAB BOOT`` as "boot", ``FINISH`` as "finish-session-store", the rest as ``source``. A line with
    a timestamp in front (``2026-...Z body``) keeps it; lines already framed, or not records, are kept as they are."""
    counters: dict[str, itertools.count[int]] = {}
    out = []
    for line in lines:
        stamp, body = _split_stamp(line)
        who = next((name for prefix, name in _SOURCES.items() if body.startswith(prefix)), source)
        if read_frame(body).source or not body[:1].isupper() or " " not in body:
            out.append(line)
            continue
        seq = next(counters.setdefault(who, itertools.count(1)))
        out.append(stamp + frame(who, seq, body.rstrip("\r\n")))
    return out


def _split_stamp(line: str) -> tuple[str, str]:
    head, _, rest = line.partition(" ")
    if head[:4].isdigit() and "T" in head and head.endswith("Z"):
        return head + " ", rest
    return "", line
