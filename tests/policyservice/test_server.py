"""The policy service over real sockets: TCP and UNIX, many requests per connection, hostile
peers, reload, and an orderly stop with a request in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from tests.policyservice.helpers import BAD_IP, request, resolver, settings

from mailwarden.greylist import MemoryStore
from mailwarden.pipeline import build
from mailwarden.policyservice import MALFORMED, PolicyChecks, PolicyServer
from mailwarden.settings import UnixPath


def make_checks(tmp_path: Path, service: str = 'greylist = "off"', **kw: object) -> PolicyChecks:
    config = settings(tmp_path, service, str(kw.get("extra", "")))
    static = kw.get("static") or resolver()
    pipeline = build(config, static, greylist=MemoryStore())  # type: ignore[arg-type]
    return PolicyChecks(pipeline, config.policy_service)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PolicyServer]:
    async with PolicyServer(make_checks(tmp_path), ("127.0.0.1", 0)) as running:
        yield running


async def connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if address.startswith("unix:"):
        return await asyncio.open_unix_connection(address[5:])
    host, _, port = address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def read_answer(reader: asyncio.StreamReader) -> str:
    async with asyncio.timeout(10):
        line = await reader.readuntil(b"\n")
        assert await reader.readuntil(b"\n") == b"\n"
    assert line.startswith(b"action=")
    return line[len(b"action=") : -1].decode()


async def closed(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(10):
        return await reader.read() == b""


def answered(stage: str) -> float:
    labels = {"frontend": "policy", "stage": stage}
    return REGISTRY.get_sample_value("mailwarden_answer_seconds_count", labels) or 0.0


async def test_many_requests_on_one_connection(server: PolicyServer) -> None:
    before = answered("rcpt")
    reader, writer = await connect(server.address)
    for number in range(20):
        writer.write(request(instance=f"msg{number}"))
        await writer.drain()
        assert (await read_answer(reader)).startswith("PREPEND Received-SPF: pass")
    assert open_connections() == 1
    writer.close()
    assert answered("rcpt") == before + 20
    for _ in range(500):  # the server notices the close
        if open_connections() == 0:
            break
        await asyncio.sleep(0.01)
    assert open_connections() == 0


def open_connections() -> float:
    return REGISTRY.get_sample_value("mailwarden_open_connections", {"frontend": "policy"}) or 0


async def test_pipelined_requests_answered_in_order(server: PolicyServer) -> None:
    reader, writer = await connect(server.address)
    writer.write(request(instance="a") + request(instance="a") + request(protocol_state="DATA"))
    assert (await read_answer(reader)).startswith("PREPEND ")
    assert await read_answer(reader) == "DUNNO"
    assert await read_answer(reader) == "DUNNO"
    writer.close()


async def test_malformed_block_answered_and_connection_kept(server: PolicyServer) -> None:
    reader, writer = await connect(server.address)
    writer.write(b"GET / HTTP/1.0\n\n")
    assert await read_answer(reader) == MALFORMED
    writer.write(request())
    assert (await read_answer(reader)).startswith("PREPEND ")
    writer.close()


async def test_oversized_line_closes_without_answer(server: PolicyServer) -> None:
    reader, writer = await connect(server.address)
    writer.write(b"request=smtpd_access_policy\nsender=" + b"a" * 100_000 + b"\n\n")
    assert await closed(reader)
    writer.close()
    # the service is still there for others
    reader, writer = await connect(server.address)
    writer.write(request())
    assert (await read_answer(reader)).startswith("PREPEND ")
    writer.close()


async def test_slow_peer_is_cut_off(tmp_path: Path) -> None:
    checks = make_checks(tmp_path, 'greylist = "off"\nread_timeout = 0.3\nidle_timeout = 0.6')
    async with PolicyServer(checks, ("127.0.0.1", 0)) as running:
        reader, writer = await connect(running.address)
        writer.write(b"request=smtpd_access_policy\n")
        started = time.monotonic()
        assert await closed(reader)
        assert time.monotonic() - started < 3
        writer.close()
        reader, writer = await connect(running.address)  # idle: closed after idle_timeout
        started = time.monotonic()
        assert await closed(reader)
        assert 0.4 < time.monotonic() - started < 3
        writer.close()
        assert running.connections == 0


async def test_connection_cap(tmp_path: Path) -> None:
    checks = make_checks(tmp_path, 'greylist = "off"\nmax_connections = 2')
    async with PolicyServer(checks, ("127.0.0.1", 0)) as running:
        held = [await connect(running.address) for _ in range(2)]
        for reader, writer in held:  # both admitted: they are answered
            writer.write(request())
            assert (await read_answer(reader)).startswith(("PREPEND", "DUNNO"))
        reader, writer = await connect(running.address)
        assert await closed(reader)  # the third is closed at once
        writer.close()
        for _, held_writer in held:
            held_writer.close()


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "policy.sock"
    path.touch()  # a plain file in the way: refused, never removed
    with pytest.raises(FileExistsError):
        async with PolicyServer(make_checks(tmp_path), UnixPath(str(path))):
            pass
    path.unlink()
    async with PolicyServer(make_checks(tmp_path), UnixPath(str(path))) as running:
        assert running.address == f"unix:{path}"
        reader, writer = await connect(running.address)
        writer.write(request())
        assert (await read_answer(reader)).startswith("PREPEND ")
        writer.close()
    assert not path.exists()


async def test_replace_takes_effect_at_the_next_request(tmp_path: Path) -> None:
    old = make_checks(tmp_path / "old", 'greylist = "off"\nspf = "prepend"')
    new = make_checks(tmp_path / "new", 'greylist = "off"\nspf = "reject"')
    async with PolicyServer(old, ("127.0.0.1", 0)) as running:
        reader, writer = await connect(running.address)
        writer.write(request(client_address=BAD_IP, instance="1"))
        assert (await read_answer(reader)).startswith("PREPEND Received-SPF: fail")
        running.replace(new)
        writer.write(request(client_address=BAD_IP, instance="2"))  # same connection
        assert (await read_answer(reader)).startswith("550 5.7.23 ")
        writer.close()


async def test_orderly_stop_finishes_the_request_in_flight(tmp_path: Path) -> None:
    static = resolver()
    static.fail("slow.example", "TXT", delay=1.0)  # the SPF lookup takes a second
    checks = make_checks(tmp_path, 'greylist = "off"', static=static)
    running = PolicyServer(checks, ("127.0.0.1", 0))
    await running.start()
    address = running.address
    try:
        busy_reader, busy = await connect(address)
        idle_reader, idle = await connect(address)
        busy.write(request(sender="x@slow.example"))
        await busy.drain()
        await asyncio.sleep(0.2)
        await running.stop_accepting()
        assert await closed(idle_reader)  # idle: closed at once
        with pytest.raises(ConnectionRefusedError):
            await connect(address)  # no new connections
        assert await running.wait_idle(10)
        answer = await read_answer(busy_reader)  # the request in flight got its answer
        assert answer.startswith("PREPEND Received-SPF: temperror")
        assert await closed(busy_reader)
        busy.close()
        idle.close()
    finally:
        await running.close()


async def test_garbage_never_takes_the_service_down(tmp_path: Path) -> None:
    """Random bytes on many connections (hypothesis draws them, one running server takes
    them): every connection is answered or closed, and a real request is answered after."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    checks = make_checks(tmp_path, 'greylist = "off"\nread_timeout = 0.5\nidle_timeout = 1')
    async with PolicyServer(checks, ("127.0.0.1", 0)) as running:
        loop = asyncio.get_running_loop()

        async def throw(data: bytes) -> None:
            reader, writer = await connect(running.address)
            try:
                writer.write(data)
                writer.write_eof()
                async with asyncio.timeout(10):
                    rest = await reader.read()
            except ConnectionResetError:  # closed with our bytes unread: a close too
                rest = b""
            finally:
                writer.close()
            assert rest == b"" or rest.startswith(b"action=")
            assert rest.count(b"action=") == rest.count(b"\n\n")

        pieces = st.sampled_from(
            [request(), b"\n", b"request=smtpd_access_policy\n", b"x" * 9000, b"a=b\n", b"\x00"]
        )
        blobs = st.lists(st.one_of(pieces, st.binary(max_size=200)), max_size=8).map(b"".join)

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(blobs)
        def property(data: bytes) -> None:
            asyncio.run_coroutine_threadsafe(throw(data), loop).result(20)

        await asyncio.to_thread(property)
        reader, writer = await connect(running.address)
        writer.write(request(instance="after the garbage"))
        assert (await read_answer(reader)).startswith("PREPEND ")
        writer.close()


async def test_a_peer_that_never_reads_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers that never drain (a peer that does not read, its buffers full: simulated, as
    loopback buffers hold megabytes) end the connection within read_timeout."""
    checks = make_checks(tmp_path, 'greylist = "off"\nspf = "off"\nread_timeout = 0.3')

    async def never(self: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    async with PolicyServer(checks, ("127.0.0.1", 0)) as running:
        _, writer = await connect(running.address)
        monkeypatch.setattr(asyncio.StreamWriter, "drain", never)
        writer.write(request(protocol_state="DATA"))
        await asyncio.sleep(0)
        started = time.monotonic()
        for _ in range(200):
            if running.connections == 0:
                break
            await asyncio.sleep(0.05)
        monkeypatch.undo()
        assert running.connections == 0
        assert time.monotonic() - started < 5
        writer.close()
