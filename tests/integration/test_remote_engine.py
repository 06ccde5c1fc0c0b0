"""The lab against an engine that cannot see the lab's files, as a remote DOCKER_HOST cannot.

The CLI runs in a private mount namespace whose tmpfs holds the user's store, their database
and the lab's cache: the engine (in the host's namespace) sees an empty directory there, just
as a remote engine has no such path at all. The control shows that a bind mount of that path
reaches the machine empty; the runs show that the store, the starting database, its baseline
and a grown database travel through the engine's API instead.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

import pytest

from integration.test_foreign_store import leftovers
from integration.test_start_db import MESSAGES, beta_database
from upstream_like import write_module_store

pytestmark = pytest.mark.docker

# Runs its arguments in a private mount namespace after putting a tmpfs over $1 and copying $2 into it.
PRIVATE = ('mount -t tmpfs -o size=128m tmpfs "$1" && cp -a "$2"/. "$1"/ && shift 2 && exec "$@"')


def _private(where: pathlib.Path, source: pathlib.Path, *argv: str, run_id: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("this test needs root and util-linux's unshare (a private mount namespace)")
        pytest.skip("needs root and util-linux's unshare")
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HERMES_LAB_CACHE": str(where / "cache"),
           "HERMES_LAB_RUN_ID": run_id}
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", PRIVATE, "private",
                           str(where), str(source), *argv], env=env, capture_output=True, text=True, timeout=900)


def test_store_and_databases_reach_an_engine_that_cannot_see_the_lab_files(tmp_path: pathlib.Path,
                                                                            lab_image: str) -> None:
    source = tmp_path / "source"
    store = write_module_store(source / "project")
    beta_database(source / "beta", store)
    where = tmp_path / "private"  # the tmpfs of the private namespace: empty to the engine
    where.mkdir()
    run_id = uuid.uuid4().hex[:10]
    control = _private(where, source, "docker", "run", "--rm", "--network", "none", "--entrypoint", "ls",
                       "-v", f"{where / 'project'}:/m:ro", lab_image, "-A", "/m", run_id=run_id)
    assert control.returncode == 0 and control.stdout.strip() == "", control.stderr  # a bind mount arrives empty
    # the host's side of that path has at most the empty directory the engine made for the bind mount
    assert (store / "hermes_state.py").is_file() and not any((where / "project").iterdir())

    repro = [str(pathlib.Path(sys.executable).with_name("repro")), "run", "--fault", "sigkill", "--trials", "1", "--seed", "5",
             "--store-path", str(where / "project")]
    from_db = _private(where, source, *repro, "--from-db", str(where / "beta" / "state.db"),
                       "--out", str(tmp_path / "from-db"), run_id=run_id)
    assert from_db.returncode == 0, from_db.stderr + from_db.stdout
    trial = _trials(tmp_path / "from-db")[0]
    assert trial["verdict"] == "pass" and trial["store"] == str(where / "project"), trial
    assert trial["preexisting"] == MESSAGES + 20 and trial["lost_preexisting"] == 0, trial  # the baseline arrived

    grown = _private(where, source, *repro, "--initial-size", "4m", "--out", str(tmp_path / "grown"), run_id=run_id)
    assert grown.returncode == 0, grown.stderr + grown.stdout
    trial = _trials(tmp_path / "grown")[0]
    assert trial["verdict"] == "pass" and int(str(trial["preexisting"])) > 0 and trial["lost_preexisting"] == 0, trial
    assert "grown by" in str(trial["start"]), trial
    assert leftovers(run_id) == ([], [])


def _trials(out: pathlib.Path) -> list[dict[str, object]]:
    return list(json.loads((out / "report.json").read_text())["trials"])


def test_a_device_is_asked_of_the_engine_not_this_host(lab_image: str) -> None:
    """The engine's answer about /dev/fuse decides power loss; a device it lacks is no, and nothing is left behind."""
    from repro.machine import engine, limits
    from repro.machine.labels import RUN_ID

    cli = engine.client()
    assert limits.has_device("/dev/fuse", cli, lab_image) is os.path.exists("/dev/fuse")  # here, the same host
    assert limits.has_device("/dev/hermes-lab-no-such-device", cli, lab_image) is False
    assert leftovers(RUN_ID)[0] == []
