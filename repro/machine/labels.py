"""The labels every container and volume of the lab carries, so that nothing is ever left behind."""

from __future__ import annotations

import os
import time
import uuid

LAB_LABEL = "org.hermes-lab"
RUN_LABEL = "org.hermes-lab.run"
ROLE_LABEL = "org.hermes-lab.role"
# The hash of the build context an image was built from (repro/machine/context.py): stale or current.
CONTEXT_LABEL = "org.hermes-lab.context"
IMAGE = os.environ.get("HERMES_LAB_IMAGE", "hermes-lab:latest")
BASE_IMAGE = os.environ.get("HERMES_LAB_BASE_IMAGE", "debian:bookworm-slim")

# One id per lab process: `repro clean --run` and the test suite's final check use it.
RUN_ID = os.environ.get("HERMES_LAB_RUN_ID") or f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"


def labels(role: str) -> dict[str, str]:
    return {LAB_LABEL: "1", RUN_LABEL: RUN_ID, ROLE_LABEL: role}
