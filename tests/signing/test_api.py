"""The public surface of mailwarden.signing: `__all__` lists exactly what it exports."""

from __future__ import annotations

from tests.public_api import assert_all_is_honest


def test_all_is_honest() -> None:
    assert_all_is_honest("mailwarden.signing")
