"""Random bytes and random command sequences over real sockets: no crash, no hang.

One gateway runs in a background thread with short timeouts; each example opens a connection,
sends its input, half-closes, and must see the server close the connection well within the
timeouts. Afterwards the gateway still serves a normal session and holds no connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.gateway.helpers import make_config

from mailwarden.gateway import Gateway, MaildirRelay, TransactionLog
from mailwarden.settings import StrictAction

COMMAND_TIMEOUT = 0.3
CLOSE_WITHIN = 5.0  # seconds; every connection must be closed by then


class Background:
    """A gateway served by its own event loop in a thread."""

    def __init__(self, tmp: Path) -> None:
        self.config = make_config(
            tmp,
            greet_pause=0.0,
            pipelining_action=StrictAction.LOG,  # go deep instead of hanging up at once
            non_smtp_action=StrictAction.LOG,
            timeouts={"command": COMMAND_TIMEOUT, "data_block": COMMAND_TIMEOUT},
            limits={"max_connections_per_client": 1000},
        )
        self.loop = asyncio.new_event_loop()
        self.gateway = Gateway(
            self.config, relay=MaildirRelay(tmp / "Maildir", fsync=False), log=TransactionLog("")
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(10)
        self.address = self.gateway.address

    def connections(self) -> int:
        async def count() -> int:
            return self.gateway.connections

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    background = Background(tmp_path_factory.mktemp("fuzz"))
    yield background
    background.stop()


def exchange(address: tuple[str, int], chunks: list[bytes], *, half_close: bool = True) -> bytes:
    """Send the chunks, half-close (or not: then the server's timeouts must end it), read
    until the server closes; fail if it never does."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(address, timeout=CLOSE_WITHIN) as sock:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server already hung up on us
        if half_close:
            with contextlib.suppress(OSError):  # ENOTCONN: the server hung up already
                sock.shutdown(socket.SHUT_WR)
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"connection still open after {CLOSE_WITHIN}s; got {received[-200:]!r}")
    assert time.monotonic() - started < CLOSE_WITHIN
    return received


def check_replies(received: bytes) -> None:
    for line in received.split(b"\r\n"):
        if line:
            assert line[:3].isdigit(), line
            assert line[3:4] in (b" ", b"-"), line


COMMANDS = st.sampled_from(
    [
        b"EHLO fuzz.example\r\n",
        b"HELO fuzz.example\r\n",
        b"MAIL FROM:<a@example.com>\r\n",
        b"MAIL FROM:<>\r\n",
        b"RCPT TO:<bob@example.net>\r\n",
        b"RCPT TO:<x%y@example.net>\r\n",
        b"RCPT TO:<bob@elsewhere.example>\r\n",
        b"DATA\r\n",
        b"Subject: x\r\n\r\nbody\r\n.\r\n",
        b".\r\n",
        b"\n.\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"STARTTLS\r\n",
        b"VRFY bob\r\n",
        b"GET / HTTP/1.1\r\n",
        b"QUIT\r\n",
        b"\r\n",
    ]
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
def test_random_bytes(server: Background, chunks: list[bytes]) -> None:
    received = exchange(server.address, chunks)
    assert received.startswith(b"220 ")
    check_replies(received)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(COMMANDS | st.binary(max_size=40).map(lambda b: b + b"\r\n"), max_size=15))
def test_random_command_sequences(server: Background, commands: list[bytes]) -> None:
    # One command at a time, as a well-behaved client would send them (plus junk lines).
    received = exchange(server.address, [b"".join(commands)] if commands else [])
    assert received.startswith(b"220 ")
    check_replies(received)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(COMMANDS, max_size=8), st.binary(max_size=50))
def test_silent_clients_are_timed_out(
    server: Background, commands: list[bytes], tail: bytes
) -> None:
    # The client sends something and then waits forever: the state's timeout must end it.
    received = exchange(server.address, [b"".join(commands) + tail], half_close=False)
    assert received.startswith(b"220 ")
    check_replies(received)


def test_still_serving_and_no_connection_left(server: Background) -> None:
    deadline = time.monotonic() + CLOSE_WITHIN
    while server.connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.connections() == 0
    received = exchange(server.address, [b"QUIT\r\n"])
    assert received.startswith(b"220 ")
    assert b"221 2.0.0" in received
