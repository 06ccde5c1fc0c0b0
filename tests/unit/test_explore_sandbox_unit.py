"""What keeps the store under test out of the lab's process, checked without an engine: the worker's
channel, the recording as data (settings filtered, store path checked), and the adversarial store
these tests use (which must leave its marker wherever it is imported)."""

from __future__ import annotations

import ast
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

import pytest

from repro.errors import ScenarioError
from repro.explore.check import ChunkStats, StateResult
from repro.explore.models import PersistenceModel as M
from repro.explore.storeenv import STORE_ENV_NAMES, store_settings
from repro.explore.sandbox import recorded_store
from repro.explore.tracedir import META_FILE, Recording, TraceDir
from repro.explore.wire import (
    ChannelClosed,
    Reader,
    WireError,
    Writer,
    frame,
    result_from_json,
    result_to_json,
    stats_from_json,
    stats_to_json,
)
from repro.oracle.verdicts import Verdict
from test_explore_support import recorded_run

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOST_MARKER = ROOT / "tests" / "stores" / "host_marker"


def _reader(data: bytes) -> Reader:
    stream = io.BytesIO(data)
    return Reader(lambda n: stream.read(min(n, 7)))  # short reads: records arrive in pieces


def test_records_come_back_in_order_whatever_the_pieces() -> None:
    out = io.BytesIO()
    writer = Writer(out)
    payloads: list[object] = [{"ready": {"pid": 1}}, {"results": [], "stats": {}}, [1, "two"]]
    for payload in payloads:
        writer.send(payload)
    reader = _reader(out.getvalue())
    assert [reader.next() for _ in range(3)] == [{"ready": {"pid": 1}}, {"results": [], "stats": {}}, [1, "two"]]
    with pytest.raises(ChannelClosed):
        reader.next()


@pytest.mark.parametrize(("data", "words"), [
    (b"LEDGER " + frame(0, {"a": 1}), "not a record header"),          # stray bytes glued onto a record
    (frame(1, {"a": 1}), "record 1 where 0 was due"),                   # out of sequence
    (frame(0, {"a": 1})[:-3], "ended inside a record"),                 # cut off
    (b"EXPL 0 4\nnope", "not JSON"),
    (b"EXPL 0 99999999999\n", "a record of"),
    (b"x" * 100, "not a record header"),
])
def test_a_channel_that_is_not_records_is_refused(data: bytes, words: str) -> None:
    with pytest.raises(WireError, match=words) as caught:
        _reader(data).next()
    assert not isinstance(caught.value, ChannelClosed)


def test_results_and_stats_cross_the_channel_unchanged() -> None:
    result = StateResult(M.TORN, 17, 4, 9, Verdict.LOST_ACKED, False, 12, (7, 8), (7,), "lost 2", True)
    assert result_from_json(result_to_json(result)) == result
    stats = ChunkStats(states=3, probes=1, probe_s=0.5, cloned_bytes=4096, cpu_s=0.25)
    assert stats_from_json(stats_to_json(stats)) == stats
    bad = {**result_to_json(result), "verdict": "fine"}
    with pytest.raises(WireError, match="cannot read"):
        result_from_json(bad)
    with pytest.raises(WireError):
        stats_from_json({"states": 1})


def test_the_worker_keeps_its_channel_away_from_what_the_store_prints() -> None:
    """After ``_private_channel`` a print (the store's, or a child's inherited stdout) lands on stderr;
    only what is written to the returned descriptor reaches the original stdout."""
    code = ("import os, subprocess\nfrom repro.explore.worker import _private_channel\nfd = _private_channel()\n"
            "print('LEDGER noise', flush=True)\nos.write(1, b'raw noise\\n')\n"
            "subprocess.run(['echo', 'child noise'])\nos.write(fd, b'RECORD')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"RECORD"
    assert b"LEDGER noise" in done.stderr and b"raw noise" in done.stderr and b"child noise" in done.stderr


def _config_names() -> set[str]:
    tree = ast.parse((ROOT / "hermes_state" / "config.py").read_text())
    return {node.value.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            and node.value.value.startswith("HERMES_STATE_")}


def test_the_store_settings_are_the_names_the_lab_store_reads() -> None:
    from repro.explore.configs import CONFIGURATIONS

    assert STORE_ENV_NAMES == _config_names()
    for spec in CONFIGURATIONS.values():
        assert set(spec.environment()) <= STORE_ENV_NAMES, spec


def test_a_recording_sets_nothing_but_the_store_settings() -> None:
    env = {"HERMES_STATE_PRESET": "durable", "HERMES_STATE_SYNCHRONOUS": "full", "PYTHONPATH": "/evil",
           "LD_PRELOAD": "/evil.so", "HERMES_STATE_JOURNAL_MODE": "wal\n$(rm -rf /)",
           "HERMES_STATE_BUSY_TIMEOUT_MS": "9" * 100, "HERMES_STATE_EVIL": "1"}
    rec = Recording.from_json(Recording(store_env=env).to_json())
    assert dict(rec.store_env) == {"HERMES_STATE_PRESET": "durable", "HERMES_STATE_SYNCHRONOUS": "full"}
    assert store_settings({1: "x", "HERMES_STATE_PRESET": ["durable"]}) == {}


@pytest.mark.parametrize("name", ["../state.db", "/etc/passwd", "", "a/b"])
def test_a_recording_names_its_database_by_a_plain_file_name(name: str) -> None:
    with pytest.raises(ValueError, match="db_name"):
        Recording.from_json(Recording(db_name=name).to_json())
    assert Recording.from_json(Recording(db_name="other.db").to_json()).db_name == "other.db"


def _with_store_path(trace: TraceDir, value: str | None) -> TraceDir:
    meta = trace.path / META_FILE
    data = json.loads(meta.read_text())
    data["store_path"] = value
    meta.write_text(json.dumps(data))
    return TraceDir.open(trace.path)


def test_a_recorded_store_path_must_name_a_store(tmp_path: pathlib.Path) -> None:
    trace = recorded_run(tmp_path, commits=2)
    assert recorded_store(trace) is None  # the image's own store
    (tmp_path / "empty").mkdir()
    for value, words in (("relative/store", "not an absolute path"), ("/no/such/dir", "not a directory"),
                         (str(tmp_path / "empty"), "no hermes_state package"), ("/etc", "no hermes_state package")):
        with pytest.raises(ScenarioError, match=words):
            recorded_store(_with_store_path(trace, value))
    store = shutil.copytree(HOST_MARKER, tmp_path / "store")
    assert recorded_store(_with_store_path(trace, str(store))) == store.resolve()


def test_the_host_marker_store_leaves_its_marker_where_it_is_imported(tmp_path: pathlib.Path) -> None:
    """Known bad for the sandbox tests: imported in a process of this host, the store leaves the marker
    the explore tests look for (and refuses to open anything as root or beside the socket)."""
    token = uuid.uuid4().hex
    store = shutil.copytree(HOST_MARKER, tmp_path / "store")
    (store / "MARKER_TOKEN").write_text(token)
    marker = pathlib.Path(f"/tmp/HOST-MARKER-{token}")
    code = ("import hermes_state, pathlib, tempfile\n"
            "db = hermes_state.SessionDB(pathlib.Path(tempfile.mkdtemp()) / 'state.db')\ndb.close()\n")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": f"{store}{os.pathsep}{ROOT}"})
        assert marker.is_file(), done.stderr
        assert f"uid={os.getuid()}" in marker.read_text()
        forbidden = os.getuid() == 0 or os.path.exists("/var/run/docker.sock")
        assert (done.returncode != 0) == forbidden, done.stderr
        assert ("runs where it must not" in done.stderr) == forbidden
    finally:
        marker.unlink(missing_ok=True)


def test_a_report_file_is_never_written_through_a_link(tmp_path: pathlib.Path) -> None:
    from repro.explore.report import _write

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "explore.json").symlink_to(victim)
    with pytest.raises(ScenarioError, match="symbolic link"):
        _write(tmp_path / "explore.json", b"{}")
    assert victim.read_text() == "precious"
    _write(tmp_path / "explore.md", b"# ok")  # known good: a plain path is written
    assert (tmp_path / "explore.md").read_bytes() == b"# ok"
