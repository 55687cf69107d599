"""A missing suite or program fails the run under CI and only skips in a user's clone."""

from __future__ import annotations

import pytest
from tests.testdata import require_testdata, unavailable


def test_missing_under_ci_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="redis-server"):
        unavailable("redis-server is not installed")
    monkeypatch.setenv("MAILWARDEN_TESTDATA", "/nonexistent/testdata")
    with pytest.raises(pytest.fail.Exception, match="/nonexistent/testdata"):
        require_testdata("openspf-rfc7208")


def test_missing_outside_ci_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="swaks"):
        unavailable("swaks is not installed")
