"""Replies give nothing away: no internal address, exception or path reaches the client.

Issue 11 §4. Before, a downstream outage answered `451 4.4.1 ... (ConnectionRefusedError(111,
"Connect call failed ('127.0.0.1', ...)"))`. The variants tried here, over real sockets:

- the downstream is down (connection refused), refuses us in its greeting or to EHLO (its
  text naming its own host), answers garbage, a line too long, closes mid-reply, or is silent;
- the downstream's own refusals (RCPT, MAIL, after DATA, LMTP per recipient) whose text names
  an IPv4 or IPv6 address (bare, bracketed, IPv4-mapped), a file path, a Python exception, or
  the downstream's host name;
- a check that raises with a path in its message.

Each time the client gets the code and enhanced status with a generic text, and the details
are in the transaction log line (and the logger). What must still pass through: a downstream
refusal whose text names only the recipient ("550 5.1.1 <nobody@example.net>: unknown user").
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.gateway.helpers import SIMPLE, Client, make_config, running
from tests.gateway.test_downstream import Script, fake_downstream, relay_to

from mailwarden.gateway import AcceptAll, Reply, Session, Transaction
from mailwarden.gateway.downstream import public_reply

OK, START_INPUT, TRY_AGAIN, REFUSED = 250, 354, 451, 550

# Nothing of these may appear in what the client reads.
SECRETS = re.compile(r"127\.0\.0\.1|10\.1\.2\.3|fd00::|Error\(|Errno|/var/|mailbox\.internal")


CLOSE = b"<close>"


def leaks(text: str) -> bool:
    return SECRETS.search(text) is not None


@asynccontextmanager
async def scripted(greeting: bytes, answers: dict[str, bytes]) -> AsyncIterator[tuple[str, int]]:
    """A downstream that sends `greeting`, then for each command the answer of its verb
    (missing: "250 ok"); an answer ending in CLOSE closes the connection after it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        try:
            while line := await reader.readline():
                answer = answers.get(line.split(b" ")[0].strip().upper().decode(), b"250 ok\r\n")
                writer.write(answer.removesuffix(CLOSE))
                await writer.drain()
                if answer.endswith(CLOSE):
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        await server.wait_closed()


async def rcpt_reply(client: Client) -> tuple[int, str]:
    await client.cmd("EHLO client.example.org")
    await client.cmd("MAIL FROM:<a@example.com>")
    return await client.cmd("RCPT TO:<bob@example.net>")


async def test_a_downstream_that_is_down_is_not_described(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake_downstream(Script()) as address:
        pass  # nobody listens there any more
    async with running(make_config(tmp_path), relay=relay_to(address)) as gateway:
        client = await Client.connect(gateway.address)
        with caplog.at_level(logging.WARNING, logger="mailwarden.gateway"):
            code, text = await rcpt_reply(client)
        assert (code, text) == (TRY_AGAIN, "4.4.1 Error: temporary failure, try again later")
        await client.cmd("QUIT")
        await client.closed()
        await asyncio.sleep(0.05)
    [record] = gateway.log.records
    [detail] = record["downstream_errors"]
    assert "ConnectionRefusedError" in detail  # the log says what happened
    assert f"{address[0]}:{address[1]}" in detail
    assert "ConnectionRefusedError" in caplog.text


DOWNSTREAM_FAILURES = {
    "greeting refused": (b"554 5.3.2 mailbox.internal [10.1.2.3] not now\r\n", {}),
    "EHLO refused": (
        b"220 mailbox.internal\r\n",
        {"EHLO": b"550 5.7.1 fd00::25 says no to /var/run/x\r\n"},
    ),
    "garbage reply": (b"220 ok\r\n", {"MAIL": b"HTTP/1.1 400 Bad Request at 10.1.2.3\r\n"}),
    "reply line too long": (b"220 ok\r\n", {"MAIL": b"250-" + b"x" * 70000 + b"\r\n"}),
    "closed mid-reply": (b"220 ok\r\n", {"MAIL": b"250-mailbox.internal\r\n" + CLOSE}),
    "closed at MAIL": (b"220 ok\r\n", {"MAIL": CLOSE}),
}


@pytest.mark.parametrize("name", sorted(DOWNSTREAM_FAILURES))
async def test_downstream_failures_give_a_generic_451(tmp_path: Path, name: str) -> None:
    greeting, answers = DOWNSTREAM_FAILURES[name]
    async with (
        scripted(greeting, answers) as address,
        running(make_config(tmp_path), relay=relay_to(address)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        code, text = await rcpt_reply(client)
        assert code == TRY_AGAIN
        assert text.endswith("Error: temporary failure, try again later")
        assert not leaks(text)
        await client.cmd("QUIT")
        await client.closed()
        await asyncio.sleep(0.05)
    assert gateway.log.records[-1]["downstream_errors"]


async def test_a_silent_downstream_gives_a_generic_451(tmp_path: Path) -> None:
    script = Script(hang_after_data=True)
    async with fake_downstream(script) as address:
        relay = relay_to(address, downstream_data=0.3)
        async with running(make_config(tmp_path), relay=relay) as gateway:
            client = await Client.connect(gateway.address)
            code = await client.transaction("a@example.com", ["bob@example.net"], SIMPLE)
            assert code == TRY_AGAIN
            await client.cmd("QUIT")
            await client.closed()
            await asyncio.sleep(0.05)
    assert "no reply from downstream" in gateway.log.records[-1]["downstream_errors"][0]


REFUSAL_TEXTS = {
    "ipv4": "550 5.7.1 <bob@example.net>: Client host [10.1.2.3] rejected",
    "ipv6": "550 5.7.1 fd00::1 is not allowed",
    "ipv4-mapped": "450 4.7.1 Client ::ffff:10.1.2.3 greylisted",
    "path": "451 4.3.0 cannot write /var/spool/postfix/incoming/ABC",
    "exception": "554 5.6.0 ValueError('bad header')",
    "errno": "451 4.3.0 [Errno 28] No space left on device",
    "host name": "550 5.1.1 mailbox.internal: no such user here",
}


def status_of(line: str) -> tuple[int, str]:
    return int(line[:3]), line.split(" ")[1]


@pytest.mark.parametrize("name", sorted(REFUSAL_TEXTS))
async def test_downstream_refusals_at_rcpt_are_withheld(tmp_path: Path, name: str) -> None:
    line = REFUSAL_TEXTS[name]
    script = Script(rcpt={"bob@example.net": line})
    async with fake_downstream(script) as address:
        # The downstream's host name is hidden: it is configured as relay_to.
        config = make_config(tmp_path, relay_to=("mailbox.internal", address[1]))
        async with running(config, relay=relay_to(address)) as gateway:
            client = await Client.connect(gateway.address)
            code, text = await rcpt_reply(client)
            assert (code, text.split(" ")[0]) == status_of(line)  # code and status kept
            assert not leaks(text)
            assert text.split(" ", 1)[1].startswith("Error: ")
            await client.cmd("QUIT")
            await client.closed()
            await asyncio.sleep(0.05)
    assert gateway.log.records[-1]["downstream_withheld"] == [line]


@pytest.mark.parametrize("name", ["ipv4", "exception", "path"])
async def test_downstream_refusals_after_data_are_withheld(tmp_path: Path, name: str) -> None:
    line = REFUSAL_TEXTS[name]
    script = Script(after_data=[line])
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        await rcpt_reply(client)
        assert (await client.cmd("DATA"))[0] == START_INPUT
        await client.send(SIMPLE)
        code, lines = await client.reply()
        assert (code, lines[0].split(" ")[0]) == status_of(line)
        assert not leaks(lines[0])
    assert gateway.log.records[-1]["downstream"] == [line]


async def test_lmtp_refusals_are_withheld(tmp_path: Path) -> None:
    script = Script(lmtp=True, after_data=["250 2.0.0 ok", "452 4.2.2 quota of /var/mail/c"])
    async with (
        fake_downstream(script) as address,
        running(make_config(tmp_path), relay=relay_to(address, lmtp=True)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        await rcpt_reply(client)
        assert (await client.cmd("RCPT TO:<carol@example.net>"))[0] == OK
        assert (await client.cmd("DATA"))[0] == START_INPUT
        await client.send(SIMPLE)
        code, lines = await client.reply()
        assert (code, lines) == (452, ["4.2.2 Error: temporary failure, try again later"])


async def test_a_clean_refusal_passes_through(tmp_path: Path) -> None:
    line = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown"
    async with (
        fake_downstream(Script(rcpt={"bob@example.net": line})) as address,
        running(make_config(tmp_path), relay=relay_to(address)) as gateway,
    ):
        client = await Client.connect(gateway.address)
        assert await rcpt_reply(client) == (REFUSED, line[4:])


class Broken(AcceptAll):
    async def on_rcpt(self, session: Session, tx: Transaction, rcpt: str) -> Reply | None:
        raise OSError(2, "No such file or directory", "/var/lib/mailwarden/secret.db")


async def test_a_check_that_raises_is_not_described(tmp_path: Path) -> None:
    async with running(make_config(tmp_path), Broken()) as gateway:
        client = await Client.connect(gateway.address)
        code, text = await rcpt_reply(client)
        assert (code, text) == (TRY_AGAIN, "4.3.0 Error: internal error, try again later")


# public_reply on its own.

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).flatmap(
    lambda ip: st.sampled_from([ip.compressed, ip.exploded, ip.compressed.upper()])
)
words = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)


@given(
    st.lists(words, max_size=5),
    st.one_of(ipv4, ipv6),
    st.sampled_from(["{}", "[{}]", "({})", "<{}>", "{}:25", "{},", "{}."]),
    st.lists(words, max_size=5),
    st.sampled_from([(550, "5.7.1"), (451, "4.4.1"), (554, "5.6.0"), (452, "4.2.2")]),
)
def test_addresses_never_pass(
    before: list[str], address: str, form: str, after: list[str], status: tuple[int, str]
) -> None:
    text = " ".join([*before, form.format(address), *after])
    public = public_reply(Reply(status[0], status[1], text))
    assert (public.code, public.status) == status
    assert address not in public.text
    assert address.lower() not in public.text.lower()
    for token in re.findall(r"[0-9A-Fa-f:.]+", public.text):
        try:
            ipaddress.ip_address(token.strip(".:"))
        except ValueError:
            continue
        raise AssertionError(f"{token} in {public.text!r}")


@given(
    st.lists(
        st.one_of(words, st.sampled_from(["<bob@example.net>:", "user", "unknown", "4.2.2"])),
        max_size=8,
    )
)
def test_clean_texts_pass_unchanged(parts: list[str]) -> None:
    reply = Reply(550, "5.1.1", " ".join(parts))
    assert public_reply(reply) == reply
