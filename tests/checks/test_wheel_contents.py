"""The wheel carries the image's build context under the lab's own namespace, identical to docker/ (no drift),
and no top-level hermes_state. Slow (it builds the wheel), so not a unit test."""

from __future__ import annotations

import pathlib
import zipfile

import pytest

from repro.machine import context

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_has_no_top_level_store_and_carries_the_build_context(lab_wheel: pathlib.Path,
                                                                        tmp_path: pathlib.Path) -> None:
    with zipfile.ZipFile(lab_wheel) as wheel:
        names = wheel.namelist()
        wheel.extractall(tmp_path)
    tops = {name.split("/")[0] for name in names}
    assert tops == {"repro", lab_wheel.name.split("-")[0] + "-0.1.0.dist-info"}, tops  # no hermes_state/
    for name in ("repro/_image/Dockerfile", "repro/_image/lab-init", "repro/_image/make-base.sh",
                 "repro/_image/s6/session-store/run", "repro/_store/hermes_state/__init__.py"):
        assert name in names
    # the packaged copy is the checkout's docker/ and hermes_state/, byte for byte: the same context hash
    packaged = context.find_sources(tmp_path / "repro")
    checkout = context.find_sources(ROOT / "repro")
    assert (packaged.origin, checkout.origin) == ("package", "checkout")
    assert list(context.context_files(packaged)) == list(context.context_files(checkout))
    assert context.digest(packaged, "base") == context.digest(checkout, "base")
    assert context.context_tar(packaged) == context.context_tar(checkout)  # reproducible, whichever copy
