"""Adversarial stores: the upstream-like test store with a few lines appended, each trying to change a verdict.

Issue 17's campaign found that a store under test could make the lab give a false pass. Each store
here is one of its tricks, written so that it would have worked against the lab as it was: the
integration tests (tests/integration/test_untrusted_store.py) hold that it no longer does.
"""

from __future__ import annotations

import pathlib

from upstream_like import write_module_store

# Acknowledge every message without writing it, after seven stray bytes with no newline on stdout:
# the next ledger line used to glue onto them, became unparseable and was dropped as a torn last line.
SWALLOW = '''
import sys as _sys


def _swallow(self, session_id, role, content=None, **_):
    _sys.stdout.write("LEDGER ")
    _sys.stdout.flush()
    return 10 ** 9


SessionDB.append_message = _swallow
'''

# Claim a configuration that promises nothing (journal off, synchronous off) with a second READY line,
# then drop every message: the oracle used to judge against the last READY and call the loss expected.
FORGED_READY = '''
import sys as _sys
_opened = SessionDB.__init__


def _init(self, *args, **kwargs):
    _opened(self, *args, **kwargs)
    print('READY {"journal_mode":"off","synchronous":0,"busy_timeout":0,"foreign_keys":0}', flush=True)


SessionDB.__init__ = _init
SessionDB.append_message = lambda self, session_id, role, content=None, **_: 10 ** 9
'''

# Drop the first 40 messages, then print about 105 MB with a fake LAB BOOT every 40 lines and a fake
# READY: the engine's log rotation used to throw away the real ledger, and the start check was fooled.
FLOOD = '''
import sys as _sys
_append = SessionDB.append_message
_calls = [0]


def _flood(self, session_id, role, content=None, **kwargs):
    _calls[0] += 1
    if _calls[0] <= 40:
        return 10 ** 9 + _calls[0]
    if _calls[0] == 41:
        line = "x" * 2600 + "\\n"
        for n in range(40_000):
            _sys.stdout.write('LAB BOOT {"disk_entries":0,"services":"session-store"}\\n' if n % 40 == 0 else line)
            if n == 20:
                _sys.stdout.write('READY {"journal_mode":"off","synchronous":0}\\n')
        _sys.stdout.flush()
    return _append(self, session_id, role, content, **kwargs)


SessionDB.append_message = _flood
'''

# When the restarted machine's probe imports it, fork a daemon that, from a second on, unlinks the
# WAL of whatever database the disk holds: it used to survive in the kept holder into the next trials.
DAEMON = '''
import os as _os
import sys as _sys
import time as _time

if _sys.argv and _sys.argv[0].endswith("probe.py") and len(_sys.argv) > 1 and _os.fork() == 0:
    _os.setsid()
    if _os.fork() == 0:
        _wal = _sys.argv[1] + "-wal"
        _time.sleep(1.0)
        while True:
            try:
                _os.unlink(_wal)
            except OSError:
                pass
            _time.sleep(0.005)
    _os._exit(0)
'''

# Drop every message (so the trial keeps its evidence), and when the probe imports it, write into the
# crash state the restarted machine keeps as evidence: it used to be owned by the store's own user.
TAMPER = '''
import glob as _glob
import sys as _sys

SessionDB.append_message = lambda self, session_id, role, content=None, **_: 10 ** 9
if _sys.argv and _sys.argv[0].endswith("probe.py"):
    for _path in _glob.glob("/var/lib/crash-state/*/state.db*"):
        try:
            with open(_path, "ab") as _handle:
                _handle.write(b"TAMPERED EVIDENCE")
        except OSError as _exc:
            print(f"tamper: {_path}: {_exc}", flush=True)
'''

KINDS = {"swallow": SWALLOW, "forged-ready": FORGED_READY, "flood": FLOOD, "daemon": DAEMON, "tamper": TAMPER}


def write_adversarial_store(root: pathlib.Path, kind: str) -> pathlib.Path:
    """The upstream-like store at ``root`` with the lines of ``kind`` appended to its module."""
    write_module_store(root)
    module = root / "hermes_state.py"
    module.write_text(module.read_text() + KINDS[kind])
    return root
