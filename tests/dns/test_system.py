"""SystemResolver against DNS servers on loopback sockets: a scripted one (tests/dns/dnsserver.py),
a forging one written here, closed and silent ports, and a real nsd (tests/dns/nsd.py)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rdataclass
import dns.rrset
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.dns.dnsserver import DNSTestServer
from tests.dns.nsd import NSD, nsd_program, start_nsd
from tests.testdata import unavailable

from mailwarden.dns import MX, TXT, NoData, NXDomain, RdType, TemporaryFailure, transport
from mailwarden.dns.system import SystemResolver, parse_server, resolve_server, system_servers
from mailwarden.dns.transport import _Deadlines


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


def resolver(server: DNSTestServer | str, **options: float) -> SystemResolver:
    timeout = float(options.pop("timeout", 1.0))
    retries = int(options.pop("retries", 0))
    address = server if isinstance(server, str) else server.address
    return SystemResolver(
        [address], timeout=timeout, retries=retries, **{k: int(v) for k, v in options.items()}
    )


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


# ---------------------------------------------------------------------- spoofing (RFC 5452)


def closed_port() -> int:
    """A loopback UDP port nobody listens on: the kernel answers ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forged(query: dns.message.Message, **change: object) -> bytes:
    """An answer to `query` (A 192.0.2.66 unless told), with one field changed."""
    question = query.question[0]
    name = change.get("name", question.name)
    response = dns.message.Message(id=int(change.get("id", query.id)))  # type: ignore[call-overload]
    response.flags = int(change.get("flags", dns.flags.QR | dns.flags.RD | dns.flags.RA))  # type: ignore[call-overload]
    rdtype = change.get("rdtype", question.rdtype)
    response.find_rrset(response.question, name, dns.rdataclass.IN, rdtype, create=True)
    address = str(change.get("address", "192.0.2.66"))
    response.answer.append(dns.rrset.from_text(name, 300, "IN", "A", address))  # type: ignore[arg-type]
    return response.to_wire()


async def test_forged_answers_are_ignored_and_the_real_one_is_used() -> None:
    """Before the real answer, the server's port sends answers with the wrong ID, the wrong
    name, type or class, no QR bit, and a truncated copy; other sockets send perfect copies
    from another port and another address. Only the real answer may be taken."""
    loop = asyncio.get_running_loop()
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    real.bind(("127.0.0.1", 0))
    other_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other_port.bind(("127.0.0.1", 0))
    other_address = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other_address.bind(("127.0.0.2", 0))
    sent: list[str] = []

    def forge_then_answer() -> None:
        data, client = real.recvfrom(4096)
        query = dns.message.from_wire(data)
        for label, wire in [
            ("wrong id", forged(query, id=query.id ^ 0x0101)),
            ("wrong name", forged(query, name=dns.name.from_text("victin.test."))),  # same length
            ("wrong type", forged(query, rdtype=dns.rdatatype.AAAA)),
            ("not a response", forged(query, flags=dns.flags.RD)),
            ("truncated copy", forged(query)[:-3]),
        ]:
            real.sendto(wire, client)
            sent.append(label)
        other_port.sendto(forged(query), client)
        other_address.sendto(forged(query), client)
        real.sendto(forged(query, address="192.0.2.1"), client)
        sent.append("real")

    loop.add_reader(real.fileno(), forge_then_answer)
    r = resolver(f"127.0.0.1:{real.getsockname()[1]}", timeout=2.0)
    try:
        answer = await r.resolve("victim.test", RdType.A)
    finally:
        loop.remove_reader(real.fileno())
        r.close()
        for sock in (real, other_port, other_address):
            sock.close()
    assert sent[-1] == "real"
    assert answer.addresses() == [ipaddress.ip_address("192.0.2.1")]


async def test_a_case_changed_question_is_still_the_question() -> None:
    """RFC 4343: names compare without regard to case (servers may echo 0x20 mixed case)."""
    loop = asyncio.get_running_loop()
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    real.bind(("127.0.0.1", 0))

    def answer() -> None:
        data, client = real.recvfrom(4096)
        query = dns.message.from_wire(data)
        real.sendto(
            forged(query, name=dns.name.from_text("VicTim.TEST."), address="192.0.2.7"), client
        )

    loop.add_reader(real.fileno(), answer)
    r = resolver(f"127.0.0.1:{real.getsockname()[1]}")
    try:
        result = await r.resolve("victim.test", RdType.A)
    finally:
        loop.remove_reader(real.fileno())
        r.close()
        real.close()
    assert result.addresses() == [ipaddress.ip_address("192.0.2.7")]


async def test_late_and_duplicate_answers_are_read_and_dropped() -> None:
    """An answer nobody waits for (a duplicate, a late one) is read off the socket and dropped:
    it neither stays queued (the loop would spin on a readable socket) nor answers a later
    query."""
    loop = asyncio.get_running_loop()
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    real.bind(("127.0.0.1", 0))
    late: list[tuple[bytes, tuple[str, int]]] = []

    def answer_twice() -> None:
        data, client = real.recvfrom(4096)
        query = dns.message.from_wire(data)
        address = "192.0.2.1" if not late else "192.0.2.2"
        wire = forged(query, address=address)
        real.sendto(wire, client)
        real.sendto(wire, client)  # a duplicate
        late.append((forged(query, address="192.0.2.66"), client))

    loop.add_reader(real.fileno(), answer_twice)
    r = resolver(f"127.0.0.1:{real.getsockname()[1]}", sockets_per_server=1)
    try:
        first = await r.resolve("victim.test", RdType.A)
        wire, client = late[0]
        real.sendto(wire, client)  # long after the answer
        await asyncio.sleep(0.1)
        [sock] = r.servers[0].open_sockets()
        with pytest.raises(BlockingIOError):  # nothing left queued
            sock.sock.recv(4096)
        second = await r.resolve("victim.test", RdType.A)
    finally:
        loop.remove_reader(real.fileno())
        r.close()
        real.close()
    assert first.addresses() == [ipaddress.ip_address("192.0.2.1")]
    assert second.addresses() == [ipaddress.ip_address("192.0.2.2")]


async def test_sockets_are_few_shared_and_rotated(server: DNSTestServer) -> None:
    """A pool of sockets serves every query; each socket is replaced after `rotate_after`
    queries, so source ports keep changing (RFC 5452 §9.2)."""
    shared = resolver(server, sockets_per_server=4, rotate_after=100_000)
    names = [f"n{i}.example.test" for i in range(200)]
    await asyncio.gather(*(shared.resolve(n, RdType.A) for n in names), return_exceptions=True)
    ports = {q.source_port for q in server.queries}
    assert 1 <= len(ports) <= 4
    assert len(shared.servers[0].open_sockets()) <= 4
    shared.close()

    server.queries.clear()
    # retries: a loaded machine may drop a datagram before the test server reads it
    rotating = resolver(server, sockets_per_server=2, rotate_after=5, retries=3)
    await asyncio.gather(*(rotating.resolve(n, RdType.A) for n in names), return_exceptions=True)
    per_port: dict[int, int] = {}
    for q in server.queries:
        per_port[q.source_port] = per_port.get(q.source_port, 0) + 1
    assert {q.name.lower().rstrip(".") for q in server.queries} >= set(names)
    assert max(per_port.values()) <= 5
    assert len(per_port) >= 40
    assert len(rotating.servers[0].open_sockets()) <= 2  # retired ones are closed when idle
    rotating.close()


async def test_query_ids_are_random(server: DNSTestServer) -> None:
    r = resolver(server, sockets_per_server=1)
    for i in range(64):
        with pytest.raises(NXDomain):
            await r.resolve(f"id{i}.nothing.test", RdType.A)
    r.close()
    ids = [q.id for q in server.queries]
    assert len(set(ids)) >= 60  # 64 draws from 65,536: a few repeats at most
    steps = {(b - a) % 65536 for a, b in itertools.pairwise(ids)}
    assert len(steps) > 32  # not a counter


async def test_queries_in_flight_are_capped(server: DNSTestServer) -> None:
    server.delay = 0.05
    r = resolver(server, max_in_flight=3)
    answers = await asyncio.gather(
        *(r.resolve(f"c{i}.example.test", RdType.A) for i in range(12)), return_exceptions=True
    )
    r.close()
    assert all(isinstance(a, NXDomain) for a in answers)
    assert server.most_waiting == 3


async def test_a_closed_port_fails_at_once_as_refused() -> None:
    """Issue 12 item 14: ICMP port unreachable ends the query now, not after 3 x 2 s."""
    r = resolver(f"127.0.0.1:{closed_port()}", timeout=2.0, retries=2)
    started = time.monotonic()
    with pytest.raises(TemporaryFailure) as failure:
        await r.resolve("example.test", RdType.A)
    elapsed = time.monotonic() - started
    r.close()
    assert "refused" in failure.value.detail
    assert "port unreachable" in failure.value.detail
    assert elapsed < 0.5


async def test_a_socket_that_cannot_be_opened_is_a_temporary_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreachable(*args: object) -> None:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(transport._Socket, "__init__", unreachable)
    r = resolver("192.0.2.53", timeout=2.0)
    with pytest.raises(TemporaryFailure, match="Network is unreachable"):
        await r.resolve("example.test", RdType.A)


async def test_queries_waiting_for_a_place_can_be_cancelled(server: DNSTestServer) -> None:
    """A query cancelled while it waits for a place (or just after being given one) leaves
    the count right: the others all finish, never more than the cap at once."""
    server.delay = 0.05
    r = resolver(server, max_in_flight=2)
    tasks = [asyncio.create_task(r.resolve(f"w{i}.example.test", RdType.A)) for i in range(10)]
    await asyncio.sleep(0.01)
    for task in tasks[2:6]:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    state = r.servers[0]._state
    assert state is not None
    assert (state.in_flight, len([w for w in state.waiting if not w.done()])) == (0, 0)
    r.close()
    assert [type(o).__name__ for o in outcomes] == ["NXDomain"] * 2 + ["CancelledError"] * 4 + [
        "NXDomain"
    ] * 4
    assert server.most_waiting == 2


async def test_the_next_server_answers_when_one_is_closed(server: DNSTestServer) -> None:
    r = SystemResolver([f"127.0.0.1:{closed_port()}", server.address], timeout=2.0, retries=2)
    started = time.monotonic()
    answer = await r.resolve("example.test", RdType.A)
    r.close()
    assert len(answer.addresses()) == 2
    assert time.monotonic() - started < 0.5


async def test_each_attempt_starts_at_the_next_server(server: DNSTestServer) -> None:
    """A silent first server costs one timeout, not every attempt."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    r = SystemResolver([address, server.address], timeout=0.2, retries=1)
    started = time.monotonic()
    try:
        answer = await r.resolve("example.test", RdType.A)
    finally:
        r.close()
        silent.close()
    assert len(answer.addresses()) == 2
    assert 0.2 <= time.monotonic() - started < 1.0


async def test_deadlines_out_of_order_each_expire_on_time() -> None:
    loop = asyncio.get_running_loop()
    deadlines = _Deadlines(loop)
    now = loop.time()
    futures = [loop.create_future() for _ in range(4)]
    for offset, future in zip([0.15, 0.05, 0.25, 10.0], futures, strict=True):
        deadlines.add(now + offset, future)
    futures[3].set_result(None)  # answered: never expires
    expired: list[int] = []
    for index in (1, 0, 2):
        with pytest.raises(TimeoutError):
            await futures[index]
        assert loop.time() >= now + [0.15, 0.05, 0.25][index] - 0.01
        expired.append(index)
    assert expired == [1, 0, 2]
    deadlines.close()


async def test_a_forked_child_leaves_the_parents_sockets_alone(server: DNSTestServer) -> None:
    """A worker forked from a process whose loop reads the sockets opens its own, and never
    unregisters the parent's from the epoll instance they share."""
    r = resolver(server, timeout=1.0, sockets_per_server=1)  # the parent's one socket
    await r.resolve("example.test", RdType.A)
    pid = os.fork()
    if pid == 0:  # the child: its own loop, the same resolver object
        try:
            code = 0 if asyncio.run(r.resolve("example.test", RdType.A)).addresses() else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    answer = await r.resolve("example.test", RdType.MX)  # the parent's sockets still heard
    assert answer.mx() == [MX(10, "mx.example.test")]
    r.close()


def test_one_resolver_serves_two_event_loops(nsd: NSD) -> None:
    """The CLI may run several asyncio.run() with one resolver: sockets follow the loop."""
    r = SystemResolver([nsd.address], timeout=2.0)
    first = asyncio.run(r.resolve("www.mail.test", RdType.A))
    second = asyncio.run(r.resolve("www.mail.test", RdType.A))
    r.close()
    assert first.records == second.records


# ---------------------------------------------------------------------- against nsd

ZONE = """\
$ORIGIN mail.test.
$TTL 300
@ SOA ns hostmaster 1 3600 600 86400 120
@ NS ns
ns A 127.0.0.1
www A 192.0.2.10
www AAAA 2001:db8::10
@ MX 10 mx1
@ MX 20 MX2.mail.test.
mx1 A 192.0.2.25
alias CNAME www
loop1 CNAME loop2
loop2 CNAME loop1
@ TXT "v=spf1 ip4:192.0.2.0/24 " "-all"
big TXT {big}
"""


@pytest.fixture(scope="module")
def nsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NSD]:
    if nsd_program() is None:
        unavailable("nsd is not installed (Debian package nsd; make system-deps)")
    big = " ".join(f'"{"y" * 200}{n:03d}"' for n in range(12))
    zones = {
        "mail.test": ZONE.format(big=big),
        "2.0.192.in-addr.arpa": (
            "$ORIGIN 2.0.192.in-addr.arpa.\n$TTL 300\n@ SOA ns.mail.test. h.mail.test. 1 1 1 1 60\n"
            "@ NS ns.mail.test.\n10 PTR www.mail.test.\n"
        ),
    }
    server = start_nsd(Path(tmp_path_factory.mktemp("nsd")), zones)
    yield server
    server.stop()


async def test_against_nsd(nsd: NSD) -> None:
    r = SystemResolver([nsd.address], timeout=2.0, retries=0)
    try:
        assert (await r.resolve("www.mail.test", RdType.A)).addresses() == [
            ipaddress.ip_address("192.0.2.10")
        ]
        assert (await r.resolve("WWW.Mail.Test.", RdType.AAAA)).addresses() == [
            ipaddress.ip_address("2001:db8::10")
        ]
        assert sorted(
            (await r.resolve("mail.test", RdType.MX)).mx(), key=lambda m: m.preference
        ) == [
            MX(10, "mx1.mail.test"),
            MX(20, "mx2.mail.test"),
        ]
        assert (await r.resolve("mail.test", RdType.TXT)).txt() == [
            TXT((b"v=spf1 ip4:192.0.2.0/24 ", b"-all"))
        ]
        assert (await r.resolve("10.2.0.192.in-addr.arpa", RdType.PTR)).names() == ["www.mail.test"]
        assert (await r.resolve("mail.test", RdType.SOA)).names() == ["ns.mail.test"]
        assert (await r.resolve("mail.test", RdType.NS)).names() == ["ns.mail.test"]
        alias = await r.resolve("alias.mail.test", RdType.A)  # nsd adds the CNAME's target
        assert alias.addresses() == [ipaddress.ip_address("192.0.2.10")]
        assert (await r.resolve("alias.mail.test", RdType.CNAME)).names() == ["www.mail.test"]
        big = await r.resolve("big.mail.test", RdType.TXT)  # > 1232 octets: TC, then TCP
        assert len(big.txt()[0].strings) == 12
        with pytest.raises(NXDomain) as nx:
            await r.resolve("nothing.mail.test", RdType.A)
        assert nx.value.ttl == 120  # RFC 2308 §5: min(SOA TTL 300, MINIMUM 120)
        with pytest.raises(NoData) as nodata:
            await r.resolve("mx1.mail.test", RdType.AAAA)
        assert nodata.value.ttl == 120
        with pytest.raises(TemporaryFailure):  # a CNAME loop is no answer
            await r.resolve("loop1.mail.test", RdType.A)
        with pytest.raises(TemporaryFailure) as refused:  # not nsd's zone: REFUSED
            await r.resolve("example.com", RdType.A)
        assert refused.value.detail == "refused"
    finally:
        r.close()


async def test_a_burst_against_nsd_gets_every_answer(nsd: NSD) -> None:
    """2,000 queries, 200 at a time, through a few sockets: none lost, none mixed up."""
    r = SystemResolver([nsd.address], timeout=3.0, retries=0)
    semaphore = asyncio.Semaphore(200)

    async def one(i: int) -> object:
        async with semaphore:
            name = "www.mail.test" if i % 2 else f"n{i}.mail.test"
            try:
                return await r.resolve(name, RdType.A)
            except NXDomain as exc:
                return exc

    try:
        outcomes = await asyncio.gather(*(one(i) for i in range(2000)))
    finally:
        r.close()
    for i, outcome in enumerate(outcomes):
        if i % 2:
            assert outcome.addresses() == [ipaddress.ip_address("192.0.2.10")]  # type: ignore[union-attr]
        else:
            assert isinstance(outcome, NXDomain)
            assert outcome.name == f"n{i}.mail.test"


# ---------------------------------------------------------------------- --dns-server values


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
    "text",
    ["192.0.2.53:", "192.0.2.53:0", "192.0.2.53:70000", "[::1", "[::1]x", "[localhost]:53"],
)
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"IP address|port|IPv6"):
        parse_server(text)


server_text = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\[?[0-9a-fA-F:.]{0,20}\]?(:[0-9]{0,6})?", fullmatch=True),
    st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9\uff10-\uff19]{0,6})?", fullmatch=True),
)


@given(server_text)
def test_any_server_value_is_a_list_of_addresses_or_a_value_error(text: str) -> None:
    """Hostile --dns-server values: addresses with ports in range, or ValueError; names are
    looked up through getaddrinfo (faked here: every name resolves to 192.0.2.1)."""

    def fake(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        assert "\x00" not in host
        assert host.isascii()
        return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.1", port))]

    original = socket.getaddrinfo
    socket.getaddrinfo = fake  # type: ignore[assignment]
    try:
        pairs = resolve_server(text)
    except ValueError:
        return
    finally:
        socket.getaddrinfo = original
    assert pairs
    for address, port in pairs:
        ipaddress.ip_address(address)
        assert 0 < port < 65536


def test_a_host_name_is_resolved_once_by_the_system() -> None:
    """Issue 12 item 16: --dns-server HOST[:PORT] takes names (getaddrinfo: /etc/hosts)."""
    assert parse_server("localhost:5353") in {("127.0.0.1", 5353), ("::1", 5353)}
    assert parse_server("localhost") in {("127.0.0.1", 53), ("::1", 53)}
    assert ("127.0.0.1", 5353) in resolve_server("LocalHost:5353") or (
        "::1",
        5353,
    ) in resolve_server("localhost:5353")


def test_a_name_that_does_not_resolve_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(ValueError, match="does not resolve"):
        parse_server("dns.example:53")
    with pytest.raises(ValueError, match="does not resolve"):
        SystemResolver(["dns.example"])


@pytest.mark.parametrize("text", ["not a host", "bad_name..example", "-x.example", "a" * 64])
def test_a_value_that_is_no_host_name_is_refused_without_a_lookup(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", pytest.fail)
    with pytest.raises(ValueError, match="neither an IP address nor a host name"):
        parse_server(text)


async def test_a_server_given_by_name(server: DNSTestServer) -> None:
    r = SystemResolver([f"localhost:{server.port}"], timeout=1.0, retries=0)
    try:
        assert len((await r.resolve("example.test", RdType.A)).addresses()) == 2
    finally:
        r.close()


# -- the servers of resolv.conf ---------------------------------------------------------------


def test_resolv_conf_nameservers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# written by hand\n"
        "; another comment\n"
        "search example.com corp.example\n"
        "options ndots:2 timeout:1 rotate\n"
        "nameserver 192.0.2.53\n"
        "  nameserver   2001:db8::53  # trailing words are ignored\n"
        "nameserver fe80::1%eth0\n"
        "nameserver not-an-address\n"  # passed over, not fatal (dnspython raised ValueError)
        "nameserver\n"
        "#nameserver 192.0.2.1\n"
        "nameserver 192.0.2.53\n"  # once
        "nameservers 192.0.2.2\n"
    )
    assert system_servers(str(conf)) == [
        ("192.0.2.53", 53),
        ("2001:db8::53", 53),
        ("fe80::1%eth0", 53),
    ]


@pytest.mark.parametrize(
    "content", [b"", b"search example.com\n", b"nameserver bogus\n", b"\xff\xfe\x00junk\n"]
)
def test_resolv_conf_without_a_usable_server_means_the_local_one(
    tmp_path: Path, content: bytes
) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_bytes(content)
    assert system_servers(str(conf)) == [("127.0.0.1", 53)]


def test_a_missing_or_unreadable_resolv_conf_means_the_local_one(tmp_path: Path) -> None:
    assert system_servers(str(tmp_path / "absent")) == [("127.0.0.1", 53)]
    assert system_servers(str(tmp_path)) == [("127.0.0.1", 53)]  # a directory


_ADDRESSES = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: a.compressed)
)
_LINES = st.one_of(
    st.builds(
        lambda a, pad: f"{pad}nameserver{pad or ' '}{a}",
        _ADDRESSES,
        st.sampled_from(["", " ", "\t"]),
    ),
    st.builds(lambda a: f"nameserver {a} extra words", _ADDRESSES),
    st.builds(lambda a, c: f"{c}nameserver {a}", _ADDRESSES, st.sampled_from(["#", ";"])),
    st.sampled_from(
        [
            "",
            "   ",
            "options rotate timeout:2 ndots:3 edns0",
            "search example.com example.net",
            "domain example.org",
            "sortlist 130.155.160.0/255.255.240.0",
            "nameserver",
            "# comment",
        ]
    ),
)


@given(st.lists(_LINES, max_size=12))
def test_resolv_conf_reads_as_dnspython_reads_it(lines: list[str]) -> None:
    """Differential: the servers dnspython's resolver reads from the same file (duplicates
    once), or the local server when it finds none."""
    import tempfile

    import dns.resolver

    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as file:
        file.write("\n".join(lines) + "\n")
    try:
        ours = system_servers(file.name)
        reference = dns.resolver.Resolver(configure=False)
        try:
            reference.read_resolv_conf(file.name)
        except dns.resolver.NoResolverConfiguration:
            expected = [("127.0.0.1", 53)]
        else:
            expected = []
            for entry in reference.nameservers:
                pair = (str(ipaddress.ip_address(str(entry))), 53)
                if pair not in expected:
                    expected.append(pair)
        assert ours == expected
    finally:
        os.unlink(file.name)
