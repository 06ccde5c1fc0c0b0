"""Grows a starting database to a given size through the store's own API: realistic sessions and messages, FTS and all (stdlib only).

Run in a throwaway machine as ``python3 -m repro.workload.grow --size BYTES --seed N --db PATH
--out DIR`` with LAB_STORE_MOUNT naming the store (none: the image's own) and no HERMES_STATE_*
settings (the store's own defaults: the database does not depend on which trial asked for it).
Sessions are created, filled with 10-120 messages of 200 B to 8 KB (one transaction each,
the store's FTS triggers firing), given token counts and mostly ended, until the database's
logical size (page_count x page_size, WAL included) reaches the target; then the store is
closed, the WAL checkpointed into the file, and the file copied to DIR. Prints one ``GROWN``
line with what it made.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
import shutil
import sqlite3
import time
from typing import Sequence

from repro.channel import close_channel, open_channel
from repro.channel import emit as write_record
from repro.protocol import Tag
from repro.verify.importcheck import import_store
from repro.workload import content

CHECK_EVERY = 200  # messages between two looks at the size
SOURCES = ("telegram", "cli", "discord", "cron")
MODELS = ("claude-sonnet", "gpt-5", "local-llama")


def logical_size(reader: sqlite3.Connection) -> int:
    """What the file will hold once the WAL is checkpointed: page_count x page_size, as a reader sees it."""
    pages = reader.execute("PRAGMA page_count").fetchone()[0]
    return int(pages) * int(reader.execute("PRAGMA page_size").fetchone()[0])


def grow(db_path: pathlib.Path, size: int, seed: int, store_mount: str | None) -> dict[str, object]:
    store = import_store(store_mount)
    rng = random.Random(f"initial:{seed}")
    started = time.monotonic()
    db = store.SessionDB(db_path)
    reader: sqlite3.Connection | None = None
    sessions = messages = 0
    done = False
    while not done:
        sessions += 1
        sid = f"init-{seed}-{sessions:06d}"
        db.create_session(sid, rng.choice(SOURCES), model=rng.choice(MODELS))
        for _ in range(rng.randint(10, 120)):
            db.append_message(sid, **content.message(rng, 200, 8000))
            messages += 1
            if messages % CHECK_EVERY == 0:
                if reader is None:
                    reader = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
                done = logical_size(reader) >= size
                if done:
                    break
        db.update_token_counts(sid, input_tokens=rng.randint(100, 50_000), output_tokens=rng.randint(100, 20_000))
        if rng.random() < 0.9:
            db.end_session(sid, rng.choice(("user_exit", "timeout", "compaction")))
    if reader is not None:
        reader.close()
    db.close()
    raw = sqlite3.connect(str(db_path), isolation_level=None)
    try:
        journal_mode = raw.execute("PRAGMA journal_mode").fetchone()[0]
        if str(journal_mode).lower() == "wal":
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        raw.close()
    return {"bytes": db_path.stat().st_size, "sessions": sessions, "messages": messages,
            "journal_mode": str(journal_mode), "seconds": round(time.monotonic() - started, 1),
            "sqlite_version": sqlite3.sqlite_version}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m repro.workload.grow", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default="/opt/data/state.db")
    parser.add_argument("--out", required=True, help="directory the grown database is copied to")
    args = parser.parse_args(argv)
    open_channel("grow")  # before the store is imported: what it prints becomes OUTPUT records
    db_path = pathlib.Path(args.db)
    facts = grow(db_path, args.size, args.seed, os.environ.get("LAB_STORE_MOUNT") or None)
    for name in ("state.db", "state.db-wal"):
        source = db_path.with_name(name)
        if source.is_file() and source.stat().st_size > 0:
            shutil.copyfile(source, pathlib.Path(args.out) / name)
    write_record(Tag.GROWN, facts)
    close_channel()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
