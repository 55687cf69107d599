"""Shared fixtures: where the third-party conformance suites live."""

from __future__ import annotations

import os
from pathlib import Path

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
        message = f"conformance data not found: {path} (set MAILWARDEN_TESTDATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
