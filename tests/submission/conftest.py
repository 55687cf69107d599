"""Fixtures of the submission tests: the TLS pair and the real Postfix of the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.gateway.conftest import postfix, postfix_server, tls_context, tls_pair
from tests.greylist.redis_server import redis_server

from mailwarden.gateway import MaildirRelay

__all__ = ["postfix", "postfix_server", "tls_context", "tls_pair"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return tmp_path / "smarthost" / "Maildir"


@pytest.fixture
def sink(maildir: Path) -> MaildirRelay:
    """A smarthost that takes everything (the Postfix tests use the real one)."""
    return MaildirRelay(maildir, fsync=False)
