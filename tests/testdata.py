"""What tests need from outside the project: the third-party conformance suites, and
programs such as redis-server, postfix and swaks (installed by `make test`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def testdata_dir() -> Path:
    """MAILWARDEN_TESTDATA, or ../shared/testdata beside the project."""
    configured = os.environ.get("MAILWARDEN_TESTDATA")
    return Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "testdata"


def require_testdata(*parts: str) -> Path:
    """A path inside the test data; skip when absent in a user's clone, fail under CI."""
    path = testdata_dir().joinpath(*parts)
    if not path.exists():
        unavailable(f"conformance data not found: {path} (set MAILWARDEN_TESTDATA)")
    return path


def unavailable(message: str) -> NoReturn:
    """Something a test needs is missing: under CI (`CI=true`) that is a failure, since
    `make test` provides it; in a user's clone the test skips, saying what is missing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
