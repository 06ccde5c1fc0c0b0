"""A package cache growing on the data disk until it is full, as npm's did on the beta machine.

Run by the s6 ``npm-cache`` service: writes 1 MiB tarball-like files under
``$LAB_DATA_DIR/npm-cache`` until ENOSPC, reports it, then holds the disk full; with
LAB_NPM_CLEAR_AFTER_MS set it deletes the cache after that long, and writing resumes.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import time

from repro.channel import emit_event, open_channel
from repro.protocol import EventKind

CHUNK = 1 << 20


def fill(cache_dir: str, limit_bytes: int = 0) -> int:
    """Write files until the disk is full (or ``limit_bytes`` is reached); returns bytes written."""
    os.makedirs(cache_dir, exist_ok=True)
    written = 0
    serial = 0
    block = os.urandom(CHUNK)  # incompressible, like tarballs
    while not limit_bytes or written < limit_bytes:
        serial += 1
        path = os.path.join(cache_dir, f"_cacache-{serial:06d}.tgz")
        try:
            with open(path, "wb") as handle:
                handle.write(block)
                handle.flush()
                os.fsync(handle.fileno())
            written += CHUNK
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            # fill the last bytes too, in small pieces, so the disk is truly full
            try:
                with open(path, "ab") as handle:
                    while True:
                        handle.write(block[:4096])
                        handle.flush()
                        written += 4096
            except OSError:
                pass
            break
    return written


def main() -> int:
    open_channel("npm-cache", isolate=False)  # no store in this process
    data_dir = os.environ.get("LAB_DATA_DIR", "/opt/data")
    cache_dir = os.path.join(data_dir, "npm-cache")
    clear_after_ms = int(os.environ.get("LAB_NPM_CLEAR_AFTER_MS", "0"))
    hold = os.environ.get("LAB_NPM_HOLD", "1") == "1"
    time.sleep(int(os.environ.get("LAB_NPM_START_DELAY_MS", "0")) / 1000.0)
    emit_event(EventKind.DISK_FILL_STARTED, dir=cache_dir)
    written = fill(cache_dir)
    usage = shutil.disk_usage(data_dir)
    emit_event(EventKind.DISK_FULL, written=written, free=usage.free, total=usage.total)
    if clear_after_ms > 0:
        time.sleep(clear_after_ms / 1000.0)
        shutil.rmtree(cache_dir, ignore_errors=True)
        emit_event(EventKind.DISK_CLEARED, free=shutil.disk_usage(data_dir).free)
    while hold:  # the service stays up like a real cache owner would
        time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
