"""The [gateway] section's own helpers: HOST:PORT, trusted networks, the default host name."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.settings import default_hostname, parse_hostport


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:25", ("127.0.0.1", 25)),
        ("[::1]:2525", ("::1", 2525)),
        ("mx.example.net:587", ("mx.example.net", 587)),
        ("::1", ("::1", 25)),
        ("mx.example.net", ("mx.example.net", 25)),
    ],
)
def test_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text, 25) == expected


@pytest.mark.parametrize(
    "text", ["", ":25", "[::1", "[::1]x", "a:b", "a:-1", "a:65536", "a:²", "a b:25", "a\x00:25"]
)
def test_bad_hostports(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - every message is its own
        parse_hostport(text)


@given(st.text(max_size=30))
def test_hostport_never_crashes(text: str) -> None:
    try:
        host, port = parse_hostport(text, 25)
    except ValueError:
        return
    assert host
    assert 0 <= port <= 65535


def test_default_hostname_prefers_a_real_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost")
    monkeypatch.setattr(socket, "gethostname", lambda: "mx1")
    assert default_hostname() == "mx1"
    monkeypatch.setattr(socket, "getfqdn", lambda: "MX1.Example.NET.")
    assert default_hostname() == "mx1.example.net"
    monkeypatch.setattr(socket, "getfqdn", lambda: "localhost.localdomain")
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    assert default_hostname() == "localhost"
