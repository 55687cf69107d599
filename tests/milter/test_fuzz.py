"""Hostile MTAs over real sockets: random bytes, truncated and oversized packets, valid
commands in any order. The server answers or closes, never crashes (no internal error
logged) and never hangs; afterwards it still negotiates and holds no connection."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.milter.helpers import Background, message
from tests.milter.test_protocol import commands as any_command

from mailwarden.milter import protocol as p
from mailwarden.milter.client import MTA_ACTIONS, MTA_PROTOCOL

CLOSE_WITHIN = 10.0


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    errors = Errors()
    for name in ("mailwarden.milter", "asyncio"):
        logging.getLogger(name).addHandler(errors)
    background = Background(tmp_path_factory.mktemp("milter-fuzz"))
    try:
        yield background
    finally:
        background.stop()
        for name in ("mailwarden.milter", "asyncio"):
            logging.getLogger(name).removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]


def exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Send, half-close, read until the server closes; fail if it never does."""
    received = b""
    with socket.create_connection(address, timeout=CLOSE_WITHIN) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail(f"connection still open after {CLOSE_WITHIN}s")
    return received


def responses(received: bytes) -> list[p.Response]:
    """What the server sent must be well-formed packets (possibly cut at the end by the
    close)."""
    reader = p.PacketReader()
    return [p.decode_response(*packet) for packet in reader.feed(received)]


NEGOTIATION = p.encode_command(p.OptionNegotiation(6, MTA_ACTIONS, MTA_PROTOCOL))
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(server: Background, data: bytes) -> None:
    responses(exchange(server.address, data))
    responses(exchange(server.address, NEGOTIATION + data))


@FUZZ
@given(st.lists(any_command, max_size=12), st.integers(0, 40))
def test_commands_in_any_order_and_cut_anywhere(
    server: Background, items: list[p.Command], cut: int
) -> None:
    stream = NEGOTIATION + b"".join(p.encode_command(c) for c in items)
    responses(exchange(server.address, stream))
    responses(exchange(server.address, stream[: len(stream) - cut]))


def test_truncated_real_session(server: Background) -> None:
    """A real message's session cut at every packet boundary and in the middle."""
    from tests.milter.helpers import commands

    stream = NEGOTIATION + b"".join(p.encode_command(c) for c in commands(message()))
    for cut in range(5, len(stream), max(1, len(stream) // 60)):
        responses(exchange(server.address, stream[:cut]))


def test_oversized_length_refused(server: Background) -> None:
    packet = NEGOTIATION + struct.pack(">I", 0xFFFFFFFF) + b"B" + b"x" * 100
    assert responses(exchange(server.address, packet))[0].__class__ is p.OptionNegotiation


def test_still_serving_and_nothing_left_open(server: Background) -> None:
    assert server.negotiates()
    assert server.connections() == 0
