"""The milter front end over a real socket, the MTA played by `MilterClient`: negotiation,
every stage's answer, several messages per connection, abort, limits, hostile input."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from tests.milter.helpers import HOSTNAME, LISTED_IP, commands, message, running

from mailwarden.milter import MilterClient, MilterServer, NegotiationError, negotiate
from mailwarden.milter import protocol as p
from mailwarden.milter.server import ACTIONS, MACROS, PROTOCOL

NO_REPLY = {
    p.Connect: p.Protocol.NR_CONN,
    p.Helo: p.Protocol.NR_HELO,
    p.Header: p.Protocol.NR_HDR,
    p.EndOfHeaders: p.Protocol.NR_EOH,
    p.Data: p.Protocol.NR_DATA,
    p.Unknown: p.Protocol.NR_UNKN,
}
SILENT = (p.Macro, p.Abort, p.Quit, p.QuitNewConnection, p.OptionNegotiation)


def host_port(server: MilterServer) -> tuple[str, int]:
    host, _, port = server.address.rpartition(":")
    return host, int(port)


async def play(
    client: MilterClient, protocol: p.Protocol, items: list[p.Command]
) -> list[tuple[p.Command, list[p.Response]]]:
    """Send each command; read the answers of those that get one (as Postfix would)."""
    out: list[tuple[p.Command, list[p.Response]]] = []
    for command in items:
        await client.send(command)
        quiet = NO_REPLY.get(type(command))
        if isinstance(command, SILENT) or (quiet is not None and quiet in protocol):
            out.append((command, []))
            continue
        responses = await asyncio.wait_for(client.until_final(), 30)
        out.append((command, responses))
        if not isinstance(responses[-1], p.Continue | p.Skip):
            break  # refused or accepted: Postfix sends no more of this message
    return out


async def session(server: MilterServer, items: list[p.Command]) -> list[p.Response]:
    """A new connection: negotiation, then `items`; every response received, in order."""
    client = await MilterClient.connect(*host_port(server))
    async with client:
        negotiated = await client.negotiate()
        answers = await play(client, negotiated.protocol, items)
        await client.send(p.Quit())
    return [r for _, rs in answers for r in rs]


async def test_negotiation_asks_only_what_we_need(tmp_path: Path) -> None:
    async with running(tmp_path) as server:
        host, port = host_port(server)
        result = await negotiate(host, port, 5)
    assert result.version == 6
    assert result.actions == ACTIONS
    assert result.protocol == PROTOCOL
    assert result.macros == MACROS
    assert "NR_HDR" in result.to_dict()["protocol"]  # type: ignore[operator]


async def test_negotiation_keeps_only_what_the_mta_offers(tmp_path: Path) -> None:
    async with running(tmp_path) as server:
        client = await MilterClient.connect(*host_port(server))
        async with client:
            old = await client.negotiate(p.Action.ADDHDRS, p.Protocol(0x7F), version=2)
    assert (old.version, old.actions, old.protocol, old.macros) == (
        2,
        p.Action.ADDHDRS,
        p.Protocol(0),
        {},
    )


async def test_negotiate_reports_failures(tmp_path: Path) -> None:
    with pytest.raises(NegotiationError, match="cannot connect"):
        await negotiate("127.0.0.1", 1, 2)

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; ends when the client gives up
        writer.close()

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    async with silent:
        with pytest.raises(NegotiationError, match="no answer"):
            await negotiate("127.0.0.1", port, 0.3)


async def test_legitimate_message_gets_our_fields_at_the_top(tmp_path: Path) -> None:
    async with running(tmp_path) as server:
        responses = await session(server, commands(message()))
    final = responses[-1]
    assert final == p.Continue()
    inserted = [r for r in responses if isinstance(r, p.InsertHeader)]
    assert all(r.index == 0 for r in inserted)
    # inserted at the top one after another: the last inserted ends up first
    names = [r.name for r in reversed(inserted)]
    assert names[:2] == ["Authentication-Results", "Received-SPF"]
    assert "X-Mailwarden-Verdict" in names
    results = inserted[-1].value
    assert results.startswith(f" {HOSTNAME};")  # HDR_LEADSPC: the value keeps its space
    assert "dkim=pass" in results
    assert "dmarc=pass" in results
    assert "\r" not in results  # folded with LF only, as milters must
    assert not [r for r in responses if isinstance(r, p.ChangeHeader)]


async def test_simple_canonicalization_survives_the_packets(tmp_path: Path) -> None:
    async with running(tmp_path) as server:
        responses = await session(server, commands(message(simple=True)))
    assert "dkim=pass" in [r for r in responses if isinstance(r, p.InsertHeader)][-1].value


async def test_spoof_under_p_reject_is_refused_with_our_550(tmp_path: Path) -> None:
    spoof = message().replace(b"From: Alice <alice@a.example>", b"From: <ceo@bank.example>")
    async with running(tmp_path) as server:
        responses = await session(server, commands(spoof))
    final = responses[-1]
    assert isinstance(final, p.ReplyCode)
    assert final.text.startswith("550 5.7.1 ")
    assert "bank.example" in final.text
    assert not [r for r in responses if isinstance(r, p.InsertHeader)]


async def test_forged_results_removed_by_occurrence_of_their_name(tmp_path: Path) -> None:
    other = b"Authentication-Results: other.example; spf=pass\r\n"
    forged = f"Authentication-Results: {HOSTNAME}; dkim=pass\r\n".encode()
    verdict = b"X-Mailwarden-Verdict: accept\r\n"
    raw = message(extra=other + forged + verdict + forged)
    async with running(tmp_path) as server:
        responses = await session(server, commands(raw))
    changes = [r for r in responses if isinstance(r, p.ChangeHeader)]
    # the 2nd and 3rd Authentication-Results (the other receiver's, 1st, stays), highest
    # first so that no removal moves the next; the forged verdict field too
    assert changes == [
        p.ChangeHeader(3, "Authentication-Results", ""),
        p.ChangeHeader(2, "Authentication-Results", ""),
        p.ChangeHeader(1, "X-Mailwarden-Verdict", ""),
    ]
    assert responses[-1] == p.Continue()


async def test_dns_list_hit_refused_at_rcpt(tmp_path: Path) -> None:
    async with running(tmp_path) as server:
        responses = await session(server, commands(message(), ip=LISTED_IP))
    assert len(responses) == 2  # MAIL continue, RCPT refused: nothing more asked
    assert responses[0] == p.Continue()
    refusal = responses[1]
    assert isinstance(refusal, p.ReplyCode)
    assert refusal.text.startswith("554 5.7.1 ") or refusal.text.startswith("550 5.7.1 ")


async def test_authenticated_submission_is_accepted_unfiltered(tmp_path: Path) -> None:
    items = commands(message(author="ceo@bank.example"))
    at = next(i for i, c in enumerate(items) if isinstance(c, p.Macro) and c.command == "M")
    items[at] = p.Macro("M", {"i": "Q1", "{auth_authen}": "alice", "{auth_type}": "PLAIN"})
    async with running(tmp_path) as server:
        responses = await session(server, items)
    assert responses == [p.Accept()]


async def test_several_messages_and_abort_on_one_connection(tmp_path: Path) -> None:
    first = commands(message())
    spoof = message().replace(b"From: Alice <alice@a.example>", b"From: <ceo@bank.example>")
    second = commands(spoof)[3:]  # same session: MAIL macros onwards
    aborted = [*commands(spoof)[3:-3], p.Abort()]  # a message given up after its headers
    third = commands(message())[3:]
    async with running(tmp_path) as server:
        client = await MilterClient.connect(*host_port(server))
        async with client:
            negotiated = await client.negotiate()
            results = []
            for items in (first, aborted, second, third):
                answers = await play(client, negotiated.protocol, items)
                results.append([r for _, rs in answers for r in rs])
    assert results[0][-1] == p.Continue()
    assert isinstance(results[2][-1], p.ReplyCode)
    assert results[2][-1].text.startswith("550")
    assert results[3][-1] == p.Continue()
    assert any(isinstance(r, p.InsertHeader) for r in results[3])


async def test_large_body_spools_and_is_checked_whole(tmp_path: Path) -> None:
    """A body beyond the spool threshold goes to a file: DKIM still passes over it all, and
    the file is gone afterwards."""
    big = b"".join(b"line %06d of a long body\r\n" % n for n in range(40_000))  # ~1 MB
    async with running(tmp_path) as server:
        responses = await session(server, commands(message(body=big)))
    results = [r for r in responses if isinstance(r, p.InsertHeader)][-1].value
    assert "dkim=pass" in results
    assert list((tmp_path / "spool").glob("msg-*")) == []


async def test_too_large_message_refused_at_the_end(tmp_path: Path) -> None:
    from dataclasses import replace

    from tests.milter.helpers import settings, zone

    from mailwarden.pipeline import build

    config = settings(tmp_path)
    limits = replace(config.gateway.limits, max_message_size=1000, spool_threshold=100)
    config = replace(config, gateway=replace(config.gateway, limits=limits))
    async with MilterServer(config, build(config, zone()), spool_dir=tmp_path / "s") as server:
        responses = await session(server, commands(message(body=b"x" * 70_000)))
    assert p.Skip() in responses  # no more chunks wanted once over the limit
    assert isinstance(responses[-1], p.ReplyCode)
    assert responses[-1].text.startswith("552 5.3.4 ")


async def test_unix_socket_and_local_connection(tmp_path: Path) -> None:
    """unix:/path listening; a connect of family unknown (a local submission) is trusted:
    never refused, even for a spoof."""
    from tests.milter.helpers import settings, zone

    from mailwarden.pipeline import build

    config = settings(tmp_path)
    path = f"unix:{tmp_path}/m.sock"
    spoof = message().replace(b"From: Alice <alice@a.example>", b"From: <ceo@bank.example>")
    items = commands(spoof)
    items[1] = p.Connect("localhost", p.Family.UNKNOWN)
    async with MilterServer(config, build(config, zone()), listen=path) as server:
        assert server.address == path
        assert (tmp_path / "m.sock").stat().st_mode & 0o777 == 0o666  # Postfix's user connects
        client = await MilterClient.connect(path)
        async with client:
            negotiated = await client.negotiate()
            answers = await play(client, negotiated.protocol, items)
    assert answers[-1][1][-1] == p.Continue()
    assert not (tmp_path / "m.sock").exists()  # removed at the end


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">I", p.MAX_PACKET + 1) + b"B",  # oversized: refused before reading it
        b"\x00\x00\x00\x00",  # empty packet
        p.encode_packet(b"H", b"mx\x00"),  # a command before negotiation
        p.encode_packet(b"Z"),  # unknown command
    ],
)
async def test_malformed_input_closes_the_connection(tmp_path: Path, data: bytes) -> None:
    async with running(tmp_path) as server:
        reader, writer = await asyncio.open_connection(*host_port(server))
        writer.write(data)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no answer
        writer.close()
        # and the server still serves
        host, port = host_port(server)
        assert (await negotiate(host, port, 5)).version == 6


async def test_out_of_order_commands_close_the_connection(tmp_path: Path) -> None:
    async with running(tmp_path) as server:
        client = await MilterClient.connect(*host_port(server))
        async with client:
            await client.negotiate()
            await client.send(p.Rcpt("<bob@b.example>"))  # no connect, no MAIL
            with pytest.raises(p.ProtocolError, match="closed"):
                await asyncio.wait_for(client.read(), 5)


async def test_connection_cap(tmp_path: Path) -> None:
    async with running(tmp_path, max_connections=1) as server:
        first = await MilterClient.connect(*host_port(server))
        async with first:
            await first.negotiate()
            second = await MilterClient.connect(*host_port(server))
            async with second:
                with pytest.raises(p.ProtocolError):
                    await asyncio.wait_for(second.negotiate(), 5)
        await asyncio.sleep(0.05)
        host, port = host_port(server)
        assert (await negotiate(host, port, 5)).version == 6  # the slot is free again


async def test_quarantine_action_puts_the_message_on_hold(tmp_path: Path) -> None:
    """With [gateway] quarantine_address set, what the gateway would redirect is put on
    hold (SMFIR_QUARANTINE), with our fields added and the answer still "continue"."""
    from dataclasses import replace

    from tests.milter.helpers import settings, zone

    from mailwarden.pipeline import build
    from mailwarden.policy import PolicyConfig, Thresholds

    config = settings(tmp_path)
    config = replace(
        config,
        gateway=replace(config.gateway, quarantine_address="quarantine@b.example"),
        policy=PolicyConfig(thresholds=Thresholds(greylist=None, add_header=-100.0)),
    )
    async with MilterServer(config, build(config, zone()), spool_dir=tmp_path / "s") as server:
        responses = await session(server, commands(message()))
    [held] = [r for r in responses if isinstance(r, p.Quarantine)]
    assert held.reason
    assert "\n" not in held.reason
    assert any(isinstance(r, p.InsertHeader) for r in responses)
    assert responses[-1] == p.Continue()


async def test_rcpt_checks_out_of_time_continue(tmp_path: Path) -> None:
    """A DNS list that never answers: RCPT says continue within the command budget (the
    end of the message decides), and the end of the message names what ran out of time."""
    from dataclasses import replace
    from typing import Any

    from tests.milter.helpers import settings, zone

    from mailwarden.dns import RdType
    from mailwarden.pipeline import build
    from mailwarden.settings import Deadlines

    inner = zone()

    class Slow:
        async def resolve(self, name: str, rdtype: RdType) -> Any:
            if name.endswith("zen.spamhaus.org"):
                await asyncio.sleep(60)
            return await inner.resolve(name, rdtype)

    config = settings(tmp_path)
    config = replace(config, deadlines=Deadlines(connect=0.3, rcpt=0.5, data=1.0))
    pipeline = build(config, Slow())  # type: ignore[arg-type]
    async with MilterServer(config, pipeline, spool_dir=tmp_path / "s") as server:
        started = asyncio.get_running_loop().time()
        responses = await session(server, commands(message()))
        assert asyncio.get_running_loop().time() - started < 5
    assert responses[1] == p.Continue()  # RCPT: nothing decided there
    fields = {r.name: r.value for r in responses if isinstance(r, p.InsertHeader)}
    assert "connect" in fields["X-Mailwarden-Incomplete"]
    assert "dkim=pass" in fields["Authentication-Results"]  # what finished still counts


async def test_dmarc_timeout_never_applies_the_policy(tmp_path: Path) -> None:
    """A spoof of a p=reject domain whose DMARC record cannot be had in time: no 550 on a
    guess; the message whose authentication depends on it is deferred (4xx)."""
    from dataclasses import replace
    from typing import Any

    from tests.milter.helpers import settings, zone

    from mailwarden.dns import RdType
    from mailwarden.pipeline import build
    from mailwarden.settings import Deadlines

    inner = zone()

    class Slow:
        async def resolve(self, name: str, rdtype: RdType) -> Any:
            if name == "_dmarc.bank.example":
                await asyncio.sleep(60)
            return await inner.resolve(name, rdtype)

    config = replace(settings(tmp_path), deadlines=Deadlines(data=1.0))
    spoof = message().replace(b"From: Alice <alice@a.example>", b"From: <ceo@bank.example>")
    async with MilterServer(config, build(config, Slow()), spool_dir=tmp_path / "s") as server:  # type: ignore[arg-type]
        responses = await session(server, commands(spoof))
    final = responses[-1]
    assert isinstance(final, p.ReplyCode), responses
    assert final.text.startswith("4"), final


async def test_stop_closes_idle_connections_and_lets_messages_finish(tmp_path: Path) -> None:
    """The idle connection is cut without an "Exception in callback" logged by asyncio (its
    streams read a cut connection task's exception: Python 3.11 raised CancelledError there,
    a traceback at every stop with Postfix connected)."""
    import contextlib

    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    items = commands(message())
    eoh = next(i for i, c in enumerate(items) if isinstance(c, p.EndOfHeaders))
    stack = contextlib.AsyncExitStack()
    server = await stack.enter_async_context(running(tmp_path))
    idle = await MilterClient.connect(*host_port(server))
    busy = await MilterClient.connect(*host_port(server))
    async with idle, busy:
        idle_protocol = (await idle.negotiate()).protocol
        busy_protocol = (await busy.negotiate()).protocol
        await play(idle, idle_protocol, items[:2])  # connected, no MAIL yet
        await play(busy, busy_protocol, items[: eoh + 1])  # inside a message
        stopping = asyncio.ensure_future(stack.aclose())
        with pytest.raises(p.ProtocolError, match="closed"):
            await asyncio.wait_for(idle.read(), 5)  # the idle one goes at once
        answers = await play(busy, busy_protocol, items[eoh + 1 :])
        assert answers[-1][1][-1] == p.Continue()  # the message in flight was answered
        await busy.send(p.Quit())
        await asyncio.wait_for(stopping, 10)
    await asyncio.sleep(0.05)
    assert errors == []
