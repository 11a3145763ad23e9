"""What a test needs from the machine: skipped with the reason where it is missing, except with
CI=true, where .ci/run installs every such part and a missing one fails the run."""

from __future__ import annotations

import os
import shutil

import pytest


def unavailable(reason: str) -> None:
    """Skip with ``reason`` (never returns); under CI=true fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}, and CI=true requires it", pytrace=False)
    pytest.skip(reason)


def program(name: str, *fallbacks: str) -> str:
    """The path of a program the test runs (``which``, then the fallbacks), or ``unavailable``."""
    found = shutil.which(name) or next((path for path in fallbacks if os.path.exists(path)), None)
    if found is None:
        unavailable(f"{name} is not installed (.ci/run installs it)")
    return found  # type: ignore[return-value]
