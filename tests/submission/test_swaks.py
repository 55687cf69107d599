"""End to end: swaks authenticates over STARTTLS and implicit TLS; Postfix is the smarthost;
the message in Postfix's Maildir carries both signatures, which dkimpy verifies."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.dkim.helpers import dkimpy_dns
from tests.gateway.helpers import require_program
from tests.gateway.postfix import Postfix
from tests.submission.helpers import (
    PASSWORD,
    Clock,
    add_user,
    dkim_records,
    make_settings,
    running,
)

import dkim
from mailwarden.gateway import DownstreamRelay
from mailwarden.submission import Submission


@asynccontextmanager
async def msa(
    tmp_path: Path, tls_context: ssl.SSLContext, postfix: Postfix, clock: Clock | None = None
) -> AsyncIterator[Submission]:
    settings = make_settings(tmp_path, smarthost=f"127.0.0.1:{postfix.port}")
    add_user(settings, "alice@a.example")
    relay = DownstreamRelay("127.0.0.1", postfix.port, helo_name="msa.a.example")
    async with running(settings, tls_context, relay, clock=clock) as server:
        yield server


async def swaks(address: tuple[str, int], *args: str) -> tuple[int, str]:
    program = require_program("swaks")
    process = await asyncio.create_subprocess_exec(
        program,
        "--server",
        f"{address[0]}:{address[1]}",
        "--helo",
        "laptop.a.example",
        "--to",
        "bob@example.net",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode("utf-8", "replace")


AUTH = ["--auth-user", "alice@a.example", "--auth-password", PASSWORD]


@pytest.mark.parametrize(
    ("port", "tls", "mechanism"),
    [(0, "--tls", "PLAIN"), (1, "--tls-on-connect", "LOGIN"), (0, "--tls", "LOGIN")],
)
async def test_swaks_submits_and_the_signed_message_lands_at_postfix(
    tmp_path: Path,
    tls_context: ssl.SSLContext,
    postfix: Postfix,
    port: int,
    tls: str,
    mechanism: str,
) -> None:
    async with msa(tmp_path, tls_context, postfix) as server:
        status, transcript = await swaks(
            server.addresses[port],
            tls,
            "--auth",
            mechanism,
            *AUTH,
            "--from",
            "alice@a.example",
            "--header",
            "From: Alice <alice@a.example>",
        )
    assert status == 0, transcript
    assert "235 2.7.0 Authentication successful" in transcript
    assert "250 2.0.0 Ok: queued as" in transcript  # Postfix's own answer, before-queue
    [delivered] = postfix.wait_delivered("bob")
    assert delivered.count(b"DKIM-Signature:") == 2
    verifier = dkim.DKIM(delivered)
    dns = dkimpy_dns(dkim_records())
    assert verifier.verify(idx=0, dnsfunc=dns)
    assert verifier.verify(idx=1, dnsfunc=dns)
    assert b"with ESMTPSA id" in delivered


async def test_swaks_sending_as_someone_else_is_refused(
    tmp_path: Path, tls_context: ssl.SSLContext, postfix: Postfix
) -> None:
    async with msa(tmp_path, tls_context, postfix) as server:
        status, transcript = await swaks(
            server.addresses[1],
            "--tls-on-connect",
            "--auth",
            "PLAIN",
            *AUTH,
            "--from",
            "ceo@a.example",
        )
        assert status != 0
        assert "550 5.7.1 Sender address <ceo@a.example> is not yours" in transcript
        status, transcript = await swaks(
            server.addresses[1],
            "--tls-on-connect",
            "--auth",
            "PLAIN",
            *AUTH,
            "--from",
            "alice@a.example",
            "--header",
            "From: CEO <ceo@a.example>",
        )
        assert status != 0
        assert "550 5.7.1 From address <ceo@a.example> is not yours" in transcript
    await asyncio.sleep(0.3)
    assert postfix.delivered("bob") == []


async def test_swaks_auth_in_clear_and_without_auth_are_refused(
    tmp_path: Path, tls_context: ssl.SSLContext, postfix: Postfix
) -> None:
    async with msa(tmp_path, tls_context, postfix) as server:
        status, transcript = await swaks(
            server.addresses[0],
            "--auth",
            "PLAIN",
            "--auth-plaintext",
            *AUTH,
            "--from",
            "alice@a.example",
        )
        assert status != 0
        assert "235" not in transcript
        status, transcript = await swaks(server.addresses[0], "--tls", "--from", "alice@a.example")
        assert status != 0
        assert "530 5.7.0 Authentication required" in transcript
    assert postfix.delivered("bob") == []


async def test_swaks_brute_force_is_blocked(
    tmp_path: Path, tls_context: ssl.SSLContext, postfix: Postfix
) -> None:
    clock = Clock()
    async with msa(tmp_path, tls_context, postfix, clock) as server:
        for _ in range(10):
            status, transcript = await swaks(
                server.addresses[1],
                "--tls-on-connect",
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice@a.example",
                "--auth-password",
                "guess",
                "--from",
                "alice@a.example",
            )
            assert "535 5.7.8" in transcript
        status, transcript = await swaks(
            server.addresses[1],
            "--tls-on-connect",
            "--auth",
            "PLAIN",
            *AUTH,
            "--from",
            "alice@a.example",
        )
        assert status != 0
        assert "454 4.7.0 Too many failed logins from your address" in transcript
        assert len(clock.slept) == 8  # answers slowed after the third failure
