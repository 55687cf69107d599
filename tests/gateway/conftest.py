"""Fixtures shared by the gateway tests: a TLS pair made once, the real Postfix downstream."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.gateway.helpers import HOSTNAME
from tests.gateway.postfix import Postfix, start_postfix

from mailwarden.gateway.tls import ensure_self_signed, server_context


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_self_signed(tmp_path_factory.mktemp("tls"), HOSTNAME)


@pytest.fixture
def tls_context(tls_pair: tuple[Path, Path]) -> ssl.SSLContext:
    return server_context(*tls_pair)


@pytest.fixture(scope="session")
def postfix_server() -> Iterator[Postfix]:
    """One Postfix for the whole run (started on first use, stopped at the end). Its root is
    outside pytest's private temporary tree: Postfix's users must be able to enter it."""
    root = Path(tempfile.mkdtemp(prefix="mailwarden-postfix-"))
    try:
        server = start_postfix(root)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postfix(postfix_server: Postfix) -> Postfix:
    """The running Postfix with empty Maildirs (restarted if a test stopped it)."""
    postfix_server.ensure_running()
    postfix_server.clear()
    return postfix_server
