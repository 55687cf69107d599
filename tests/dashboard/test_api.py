"""The public API of the metrics, the transactions store and the dashboard: each `__all__`
lists exactly what the package defines or re-exports."""

from __future__ import annotations

import pytest
from tests.public_api import assert_all_is_honest

MODULES = ["mailwarden.metrics", "mailwarden.transactions", "mailwarden.dashboard"]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_honest(name: str) -> None:
    assert_all_is_honest(name)
