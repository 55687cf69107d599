"""The DNS options every command shares (cli/common.py), over real sockets: --dns-server with a
host name (issue 12 item 16) and a closed DNS port (issue 12 item 14)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.dns.nsd import NSD, nsd_program, start_nsd
from tests.testdata import unavailable

from mailwarden.cli import run

ZONE = """\
$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
@ SOA ns.mail.test. hostmaster.mail.test. 1 3600 600 86400 60
@ NS ns.mail.test.
10 PTR www.mail.test.
"""
FORWARD = """\
$ORIGIN mail.test.
$TTL 300
@ SOA ns hostmaster 1 3600 600 86400 60
@ NS ns
ns A 127.0.0.1
www A 192.0.2.10
"""


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NSD]:
    if nsd_program() is None:
        unavailable("nsd is not installed (Debian package nsd; make system-deps)")
    server = start_nsd(
        Path(tmp_path_factory.mktemp("nsd")), {"2.0.192.in-addr.arpa": ZONE, "mail.test": FORWARD}
    )
    yield server
    server.stop()


def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dns_server_by_host_name(capsys: pytest.CaptureFixture[str], nsd: NSD) -> None:
    code, out, err = invoke(
        capsys, "iprev", "192.0.2.10", "--dns-server", f"localhost:{nsd.port}", "--json"
    )
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert (result["result"], result["name"]) == ("pass", "www.mail.test")


def test_dns_server_name_that_does_not_resolve(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_such_name(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    code, out, err = invoke(capsys, "iprev", "192.0.2.10", "--dns-server", "dns.example:53")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [
        "mailwarden: error: --dns-server: bad server 'dns.example:53': host name 'dns.example' "
        "does not resolve (Name or service not known)"
    ]


@pytest.mark.parametrize("value", ["not a host", "[localhost]:53", "localhost:0", "::1]:53"])
def test_dns_server_that_is_neither_address_nor_name(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, out, err = invoke(capsys, "iprev", "192.0.2.10", "--dns-server", value)
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert f"--dns-server: bad server {value!r}" in err


def test_a_closed_dns_port_is_refused_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12 item 14: not 3 attempts x 2 s of waiting, but an answer now, saying why."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    server = f"127.0.0.1:{port}"
    options = ["--dns-server", server, "--dns-timeout", "2", "--dns-retries", "2", "--json"]
    code, out, _ = invoke(capsys, "iprev", "192.0.2.10", *options)
    elapsed = time.monotonic() - started
    result = json.loads(out)
    assert result["result"] == "temperror"
    assert "connection refused (port unreachable)" in result["reason"]
    assert elapsed < 1.0
    assert code in (0, 1)
