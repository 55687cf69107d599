"""The socketmap and tcp_table servers over real sockets, with the SRS maps, answering as
postsrsd does; and what a hostile client gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailwarden.socketmap import (
    Answer,
    SocketmapServer,
    TCPTableServer,
    encode,
    parse,
    srs_maps,
)
from mailwarden.srs import SRS

ours = SRS("srs.example.net", (b"secret",))
MAPS = srs_maps(ours, ["example.net"])


@pytest.fixture
async def socketmap() -> AsyncIterator[tuple[str, int]]:
    server = SocketmapServer(MAPS, idle_timeout=2)
    await server.start(("127.0.0.1", 0))
    address = server.address
    assert isinstance(address, tuple)
    yield address
    await server.close()


async def ask(address: tuple[str, int] | str, *requests: bytes) -> list[bytes]:
    if isinstance(address, str):
        reader, writer = await asyncio.open_unix_connection(address)
    else:
        reader, writer = await asyncio.open_connection(*address)
    writer.write(b"".join(encode(r) for r in requests))  # pipelined, as Postfix may
    await writer.drain()
    answers: list[bytes] = []
    data = b""
    while len(answers) < len(requests):
        chunk = await asyncio.wait_for(reader.read(4096), 5)
        if not chunk:
            break
        data += chunk
        while data:
            try:
                value, data = parse(data)
            except ValueError:
                break
            answers.append(value)
    writer.close()
    return answers


async def test_forward_and_reverse(socketmap: tuple[str, int]) -> None:
    forward, local, none, domainless = await ask(
        socketmap,
        b"forward alice@a.example",
        b"forward bob@Example.NET",
        b"forward x@srs.example.net",
        b"forward alice",
    )
    assert forward == b"OK " + ours.forward("alice@a.example").encode()
    assert local == b"NOTFOUND Need not rewrite local domain."
    assert none == b"NOTFOUND Need not rewrite local domain."
    assert domainless == b"NOTFOUND No domain."
    address = forward[3:]
    back, lower, plain, forged = await ask(
        socketmap,
        b"reverse " + address,
        b"reverse " + address.lower(),
        b"reverse carol@remote.example",
        b"reverse SRS0=AAAA=ME=a.example=alice@srs.example.net",
    )
    assert back == b"OK alice@a.example"
    assert lower == b"OK alice@a.example"
    assert plain == b"NOTFOUND Not an SRS address."
    assert forged in (b"NOTFOUND Hash invalid in SRS address.", b"NOTFOUND Time stamp out of date.")


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        (b"lookup alice@a.example", b"PERM Invalid map."),
        (b"forward", b"PERM Invalid query."),
        (b" alice@a.example", b"PERM Invalid query."),
    ],
)
async def test_bad_queries(socketmap: tuple[str, int], request_: bytes, answer: bytes) -> None:
    assert await ask(socketmap, request_) == [answer]


async def test_malformed_netstrings_end_the_connection(socketmap: tuple[str, int]) -> None:
    for junk in (b"GET / HTTP/1.0\r\n\r\n", b"99999:" + b"x" * 10, b"5:hello;"):
        reader, writer = await asyncio.open_connection(*socketmap)
        writer.write(junk)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)  # answered, then closed
        assert data == encode(b"PERM Invalid query.")
        writer.close()
    # the server still answers others
    assert await ask(socketmap, b"forward alice@a.example") != []


async def test_idle_clients_are_dropped(socketmap: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*socketmap)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the idle timeout
    writer.close()


async def test_a_broken_lookup_answers_temp() -> None:
    async def broken(key: str) -> Answer:
        raise RuntimeError("bug")

    server = SocketmapServer({"x": broken})
    await server.start(("127.0.0.1", 0))
    try:
        assert await ask(server.address, b"x key") == [b"TEMP Internal error."]
    finally:
        await server.close()


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "srs.sock"
    path.touch()  # not a socket: never removed
    server = SocketmapServer(MAPS)
    with pytest.raises(OSError, match="in use"):
        await server.start(path)
    path.unlink()
    await server.start(path)
    try:
        assert (path.stat().st_mode & 0o777) == 0o666
        answers = await ask(str(path), b"forward alice@a.example")
        assert answers[0].startswith(b"OK SRS0=")
    finally:
        await server.close()


async def tcp_ask(address: tuple[str, int] | str, *lines: bytes) -> list[bytes]:
    assert isinstance(address, tuple)
    reader, writer = await asyncio.open_connection(*address)
    answers = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        answers.append((await asyncio.wait_for(reader.readline(), 5)).rstrip(b"\n"))
    writer.close()
    return answers


async def test_tcp_table_as_postsrsd_1() -> None:
    forward, reverse = TCPTableServer(MAPS["forward"]), TCPTableServer(MAPS["reverse"])
    await forward.start(("127.0.0.1", 0))
    await reverse.start(("127.0.0.1", 0))
    try:
        (rewritten, local, junk) = await tcp_ask(
            forward.address, b"get alice@a.example\n", b"get bob@example.net\n", b"put x\n"
        )
        assert rewritten == b"200 " + ours.forward("alice@a.example").encode()
        assert local == b"500 Need not rewrite local domain."
        assert junk == b"500 Invalid query."
        encoded = rewritten[4:].replace(b"=", b"%3D").replace(b"@", b"%40")
        (back,) = await tcp_ask(reverse.address, b"get " + encoded + b"\n")
        assert back == b"200 alice@a.example"
        (weird,) = await tcp_ask(forward.address, b"get %C3%BCser@b%C3%BCcher.example\n")
        assert weird.startswith(b"200 SRS0=")
        assert b"%C3%BC" in weird  # non-ASCII is URL-encoded back
    finally:
        await forward.close()
        await reverse.close()
