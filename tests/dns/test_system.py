"""SystemResolver against a real DNS server on a loopback socket."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from tests.dns.dnsserver import DNSTestServer

from mailwarden.dns import MX, TXT, NoData, NXDomain, RdType, TemporaryFailure
from mailwarden.dns.system import SystemResolver, parse_server


@pytest.fixture
async def server() -> AsyncIterator[DNSTestServer]:
    srv = DNSTestServer()
    srv.add("example.test", "A", "192.0.2.1", "192.0.2.2")
    srv.add("example.test", "AAAA", "2001:db8::1")
    srv.add("example.test", "MX", "10 mx.example.test.")
    srv.add("example.test", "TXT", '"v=spf1 " "-all"')
    srv.add("1.2.0.192.in-addr.arpa", "PTR", "host.example.test.")
    srv.add("alias.example.test", "CNAME", "example.test.")
    srv.add("big.example.test", "TXT", *[f'"{"x" * 250}{n:04d}"' for n in range(20)])
    srv.add("sub.empty.example.test", "A", "192.0.2.9")
    await srv.start()
    yield srv
    await srv.stop()


def resolver(server: DNSTestServer, **options: float) -> SystemResolver:
    timeout = float(options.get("timeout", 1.0))
    retries = int(options.get("retries", 0))
    return SystemResolver([server.address], timeout=timeout, retries=retries)


async def test_typed_answers(server: DNSTestServer) -> None:
    r = resolver(server)
    a = await r.resolve("Example.TEST.", RdType.A)
    assert a.name == "example.test"
    assert sorted(a.addresses()) == [  # an RRset is a set: its order is not defined
        ipaddress.ip_address("192.0.2.1"),
        ipaddress.ip_address("192.0.2.2"),
    ]
    assert a.ttl == 300
    assert (await r.resolve("example.test", RdType.AAAA)).addresses() == [
        ipaddress.ip_address("2001:db8::1")
    ]
    assert (await r.resolve("example.test", RdType.MX)).mx() == [MX(10, "mx.example.test")]
    assert (await r.resolve("example.test", RdType.TXT)).txt() == [TXT((b"v=spf1 ", b"-all"))]
    ptr = await r.resolve("1.2.0.192.in-addr.arpa", RdType.PTR)
    assert ptr.names() == ["host.example.test"]
    alias = await r.resolve("alias.example.test", RdType.A)
    assert len(alias.addresses()) == 2


async def test_queries_carry_edns0(server: DNSTestServer) -> None:
    await resolver(server).resolve("example.test", RdType.A)
    query = server.queries[-1]
    assert (query.edns, query.payload, query.tcp) == (0, 1232, False)


async def test_negative_answers_and_their_ttl(server: DNSTestServer) -> None:
    r = resolver(server)
    with pytest.raises(NXDomain) as nx:
        await r.resolve("missing.example.test", RdType.A)
    assert nx.value.ttl == 60  # RFC 2308 §5: min(SOA TTL 300, MINIMUM 60)
    with pytest.raises(NoData) as nodata:
        await r.resolve("example.test", RdType.PTR)
    assert nodata.value.ttl == 60
    with pytest.raises(NoData):  # an empty non-terminal exists (RFC 8020)
        await r.resolve("empty.example.test", RdType.A)


async def test_servfail_is_a_temporary_failure(server: DNSTestServer) -> None:
    server.servfail.add("example.test.")
    with pytest.raises(TemporaryFailure) as failure:
        await resolver(server).resolve("example.test", RdType.A)
    assert failure.value.detail == "servfail"


async def test_timeout_after_retries(server: DNSTestServer) -> None:
    server.silent.add("example.test.")
    with pytest.raises(TemporaryFailure) as failure:
        await resolver(server, timeout=0.2, retries=2).resolve("example.test", RdType.A)
    assert failure.value.detail == "timeout"
    assert server.count("example.test.", tcp=False) >= 3


async def test_retry_recovers_from_a_lost_datagram(server: DNSTestServer) -> None:
    server.drop_udp["example.test."] = 1
    answer = await resolver(server, timeout=0.3, retries=1).resolve("example.test", RdType.A)
    assert len(answer.addresses()) == 2
    server.drop_udp["example.test."] = 1
    with pytest.raises(TemporaryFailure):
        await resolver(server, timeout=0.3, retries=0).resolve("example.test", RdType.A)


async def test_truncated_answer_is_retried_over_tcp(server: DNSTestServer) -> None:
    answer = await resolver(server).resolve("big.example.test", RdType.TXT)
    assert len(answer.txt()) == 20
    assert server.count("big.example.test.", tcp=False) == 1
    assert server.count("big.example.test.", tcp=True) == 1


async def test_invalid_name_is_nxdomain_without_a_query(server: DNSTestServer) -> None:
    with pytest.raises(NXDomain) as nx:
        await resolver(server).resolve("a" * 64 + ".example.test", RdType.A)
    assert nx.value.detail == "invalid name"
    assert server.queries == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5353", ("192.0.2.53", 5353)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize(
    "text", ["dns.example", "192.0.2.53:", "192.0.2.53:0", "192.0.2.53:70000", "[::1", "[::1]x"]
)
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"IP address|port|IPv6"):
        parse_server(text)
