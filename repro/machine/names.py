"""What the lab calls things in the engine -- its label keys and the default image names -- with no imports,
so the engine (which selects by them) and labels (which puts them on what is made) both sit above it."""

from __future__ import annotations

import os

LAB_LABEL = "org.hermes-lab"
# The hash of the build context an image was built from (repro/machine/context.py): stale or current.
CONTEXT_LABEL = "org.hermes-lab.context"
IMAGE = os.environ.get("HERMES_LAB_IMAGE", "hermes-lab:latest")
BASE_IMAGE = os.environ.get("HERMES_LAB_BASE_IMAGE", "debian:bookworm-slim")
