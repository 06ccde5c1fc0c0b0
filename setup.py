"""Puts the image's build context into the wheel as package data, under the lab's own namespace.

docker/ (Dockerfile, lab-init, lab-blockfs, s6 services, make-base.sh) becomes ``repro/_image`` and the bundled
store becomes ``repro/_store/hermes_state``: `repro image build` then works from any installed
copy (repro/machine/context.py finds them), and the wheel has no top-level ``hermes_state`` that
would shadow a user's own. The repository keeps docker/ and hermes_state/ as the source of
truth; the copies exist only in build output (tests/unit/test_packaging.py checks the wheel).
Everything else about the project is in pyproject.toml.
"""

from __future__ import annotations

import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent
# (source in the repository, destination under the built repro package, files it takes)
PACKAGE_DATA = (
    ("docker", "_image", ("Dockerfile", "lab-init", "lab-blockfs", "make-base.sh", "s6/*/*")),
    ("hermes_state", "_store/hermes_state", ("*.py", "README.md")),
)


class BuildPyWithImage(build_py):
    """setuptools' build_py, then the build context copied into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds docker/ and hermes_state/ in the checkout itself
        package = pathlib.Path(self.build_lib) / "repro"
        for source, target, patterns in PACKAGE_DATA:
            destination = package / target
            shutil.rmtree(destination, ignore_errors=True)
            for pattern in patterns:
                for path in sorted((ROOT / source).glob(pattern)):
                    if path.is_file() and "__pycache__" not in path.parts:
                        out = destination / path.relative_to(ROOT / source)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, out)


setup(cmdclass={"build_py": BuildPyWithImage})
