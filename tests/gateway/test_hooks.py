"""The Checks hooks: when each runs, what it sees, and what its answers do."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from tests.gateway.helpers import HOSTNAME, SIMPLE, Client, make_config, messages, running

from mailwarden.gateway import (
    AcceptAll,
    Checks,
    Reply,
    Session,
    Transaction,
)
from mailwarden.pipeline import MessageDecision, parse


class Recorder(AcceptAll):
    """Records every call; answers can be scripted per stage."""

    def __init__(self, **answers: object) -> None:
        self.calls: list[tuple[str, object]] = []
        self.answers = answers
        self.messages: list[bytes] = []  # as the checks read them
        self.sessions: list[Session] = []

    async def on_connect(self, session: Session) -> Reply | None:
        self.sessions.append(session)
        self.calls.append(("connect", session.client_ip))
        return self.answers.get("connect")  # type: ignore[return-value]

    async def on_helo(self, session: Session) -> Reply | None:
        self.calls.append(("helo", session.helo))
        return self.answers.get("helo")  # type: ignore[return-value]

    async def on_mail(self, session: Session, tx: Transaction) -> Reply | None:
        self.calls.append(("mail", tx.mail_from))
        return self.answers.get("mail")  # type: ignore[return-value]

    async def on_rcpt(self, session: Session, tx: Transaction, rcpt: str) -> Reply | None:
        self.calls.append(("rcpt", rcpt))
        answer = self.answers.get("rcpt")
        return answer(rcpt) if callable(answer) else answer  # type: ignore[no-any-return]

    async def on_data(self, session: Session, tx: Transaction, message: bytes) -> MessageDecision:
        self.calls.append(("data", list(tx.rcpts)))
        self.messages.append(message)
        decision = self.answers.get("data")
        if not isinstance(decision, MessageDecision):
            return MessageDecision()
        return dataclasses.replace(decision, message=parse(message))  # what the checks read

    async def on_disconnect(self, session: Session) -> None:
        self.calls.append(("disconnect", session.id))


def test_accept_all_is_a_checks() -> None:
    assert isinstance(AcceptAll(), Checks)
    assert isinstance(Recorder(), Checks)


async def test_each_stage_runs_once(tmp_path: Path, tls_context: object) -> None:
    checks = Recorder()
    async with running(make_config(tmp_path), checks, tls_context=tls_context) as gateway:  # type: ignore[arg-type]
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("STARTTLS")
        await client.starttls()
        await client.cmd("EHLO client.example.org")  # same name: no second HELO check
        code = await client.transaction(
            "a@example.com", ["bob@example.net", "carol@example.net"], SIMPLE, ehlo=False
        )
        assert code == 250
        await client.cmd("EHLO other.example.org")  # a new name is checked
        await client.cmd("QUIT")
        await client.closed()
        await asyncio.sleep(0.05)
    session = checks.sessions[0]
    assert [name for name, _ in checks.calls] == [
        "connect",
        "helo",
        "mail",
        "rcpt",
        "rcpt",
        "data",
        "helo",
        "disconnect",
    ]
    assert checks.calls[1] == ("helo", "client.example.org")
    assert checks.calls[5] == ("data", ["bob@example.net", "carol@example.net"])
    assert checks.messages == [SIMPLE[:-3]]  # CRLF lines, unstuffed, without the end
    assert session.tls is not None
    assert session.client_ip == "127.0.0.1"


async def test_temporary_connect_refusal_is_421(tmp_path: Path) -> None:
    checks = Recorder(connect=Reply(451, "4.7.1", "Try again later"))
    async with running(make_config(tmp_path), checks) as gateway:
        client = await Client.connect(gateway.address, greeting=False)
        assert await client.reply() == (421, [f"4.7.1 {HOSTNAME} Try again later"])
        assert await client.closed()


async def test_connect_refusal_is_the_greeting(tmp_path: Path) -> None:
    checks = Recorder(connect=Reply(554, "5.7.1", "Listed at dnsbl.example"))
    async with running(make_config(tmp_path), checks) as gateway:
        client = await Client.connect(gateway.address, greeting=False)
        code, lines = await client.reply()
        assert code == 554
        assert lines == ["5.7.1 Listed at dnsbl.example"]
        assert await client.closed()


class Deferring(AcceptAll):
    """Postscreen style: decide at connect, refuse at RCPT."""

    async def on_connect(self, session: Session) -> Reply | None:
        session.deferred_reply = Reply(550, "5.7.1", "Service unavailable; client listed")
        return None


async def test_deferred_refusal_at_rcpt(tmp_path: Path) -> None:
    async with running(make_config(tmp_path), Deferring()) as gateway:
        client = await Client.connect(gateway.address)
        assert (await client.cmd("EHLO client.example.org"))[0] == 250
        assert (await client.cmd("MAIL FROM:<a@example.com>"))[0] == 250
        assert await client.cmd("RCPT TO:<bob@example.net>") == (
            550,
            "5.7.1 Service unavailable; client listed",
        )
        assert (await client.cmd("DATA"))[0] == 550
        await client.cmd("QUIT")
        await client.closed()
        await asyncio.sleep(0.05)
    [record] = gateway.log.records
    assert record["rejected_rcpts"][0]["rcpt"] == "bob@example.net"


async def test_stage_refusals(tmp_path: Path) -> None:
    greylist = Reply(451, "4.7.1", "Greylisted, try again later")
    checks = Recorder(
        helo=None,
        mail=None,
        rcpt=lambda rcpt: greylist if rcpt.startswith("grey") else None,
    )
    async with running(make_config(tmp_path), checks) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        assert await client.cmd("RCPT TO:<grey@example.net>") == (
            451,
            "4.7.1 Greylisted, try again later",
        )
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    # Relay control runs first: the checks never see a relay attempt.
    async with running(make_config(tmp_path), checks) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        await client.cmd("MAIL FROM:<a@example.com>")
        before = len(checks.calls)
        assert (await client.cmd("RCPT TO:<x@elsewhere.example>"))[0] == 550
        assert [c for c in checks.calls[before:] if c[0] == "rcpt"] == []


async def test_mail_refusal_ends_the_transaction(tmp_path: Path) -> None:
    checks = Recorder(mail=Reply(550, "5.7.23", "SPF fail"))
    async with running(make_config(tmp_path), checks) as gateway:
        client = await Client.connect(gateway.address)
        await client.cmd("EHLO client.example.org")
        assert await client.cmd("MAIL FROM:<a@example.com>") == (550, "5.7.23 SPF fail")
        assert (await client.cmd("RCPT TO:<bob@example.net>"))[0] == 503


async def test_helo_refusal(tmp_path: Path) -> None:
    checks = Recorder(helo=Reply(550, "5.7.1", "Bad HELO"))
    async with running(make_config(tmp_path), checks) as gateway:
        client = await Client.connect(gateway.address)
        assert await client.cmd("EHLO localhost") == (550, "5.7.1 Bad HELO")
        assert (await client.cmd("MAIL FROM:<a@example.com>"))[0] == 503


async def test_data_decision_headers(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    long_value = f"{HOSTNAME}; spf=pass smtp.mailfrom=example.com; " + "dkim=pass header.d=x " * 5
    decision = MessageDecision(
        add_headers=[("Authentication-Results", long_value), ("X-Verdict", "accept")],
        remove_fields=(0, 2),  # the forged results field and X-Remove-Me
        log={"action": "accept", "symbols": ["SPF_PASS"], "verdict": {"score": -1}},
    )
    body = (
        b"Authentication-Results: " + HOSTNAME.upper().encode() + b"; dkim=pass (forged)\r\n"
        b"Authentication-Results: other.example; spf=fail\r\n"
        b"X-Remove-Me: please\r\nX-Keep: yes\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
    )
    async with running(make_config(tmp_path), Recorder(data=decision), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        assert await client.transaction("a@example.com", ["bob@example.net"], body) == 250
        await client.cmd("QUIT")
        await client.closed()
    [message] = messages(maildir)
    head = message.split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    names = [line.split(":")[0] for line in lines if not line.startswith(("\t", " "))]
    assert names == [
        "Return-Path",
        "Delivered-To",
        "Received",
        "Authentication-Results",
        "X-Verdict",
        "Authentication-Results",
        "X-Keep",
        "Subject",
    ]
    assert "(forged)" not in head
    assert "other.example; spf=fail" in head
    assert all(len(line) <= 78 for line in lines)
    ours = head.split("Authentication-Results: ")[1].split("X-Verdict")[0]
    assert " ".join(ours.split()) == " ".join(long_value.split())
    [record] = gateway.log.records
    assert record["action"] == "accept"
    assert record["symbols"] == ["SPF_PASS"]
    assert record["removed_headers"] == ["Authentication-Results", "X-Remove-Me"]


async def test_data_refusal_and_redirect(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    reject = MessageDecision(reply=Reply(550, "5.7.1", "Rejected by DMARC policy"))
    async with running(make_config(tmp_path), Recorder(data=reject), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        assert await client.transaction("a@example.com", ["bob@example.net"], SIMPLE) == 550
    assert messages(maildir) == []
    quarantine = MessageDecision(redirect_to=["quarantine@example.net"])
    async with running(
        make_config(tmp_path), Recorder(data=quarantine), maildir=maildir
    ) as gateway:
        client = await Client.connect(gateway.address)
        assert await client.transaction("a@example.com", ["bob@example.net"], SIMPLE) == 250
    [message] = messages(maildir)
    assert b"Delivered-To: quarantine@example.net\r\n" in message
    assert b"Delivered-To: bob@example.net" not in message


class Broken(AcceptAll):
    async def on_data(self, session: Session, tx: Transaction, message: bytes) -> MessageDecision:
        raise RuntimeError("bug in a check")


async def test_a_broken_check_answers_451(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    async with running(make_config(tmp_path), Broken(), maildir=maildir) as gateway:
        client = await Client.connect(gateway.address)
        assert await client.transaction("a@example.com", ["bob@example.net"], SIMPLE) == 451
        assert (await client.cmd("NOOP"))[0] == 250
    assert messages(maildir) == []


class Slow(AcceptAll):
    async def on_data(self, session: Session, tx: Transaction, message: bytes) -> MessageDecision:
        await asyncio.sleep(10)
        return MessageDecision()


async def test_slow_checks_answer_451(tmp_path: Path) -> None:
    config = make_config(tmp_path, timeouts={"checks": 0.2})
    async with running(config, Slow()) as gateway:
        client = await Client.connect(gateway.address)
        assert await client.transaction("a@example.com", ["bob@example.net"], SIMPLE) == 451


class EventReader(AcceptAll):
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_data(self, session: Session, tx: Transaction, message: bytes) -> MessageDecision:
        self.seen = [str(e) for e in session.events]
        return MessageDecision()


async def test_checks_see_the_strict_smtp_events(tmp_path: Path) -> None:
    from mailwarden.settings import BareLineEnding, StrictAction

    checks = EventReader()
    config = make_config(
        tmp_path,
        pipelining_action=StrictAction.LOG,
        command_bare_lf=BareLineEnding.NORMALIZE,  # the HELO ended by a bare LF is run
    )
    async with running(config, checks) as gateway:
        client = await Client.connect(gateway.address)
        await client.send(b"HELO client.example.org\nNOOP\r\n")
        assert (await client.reply())[0] == 250
        assert (await client.reply())[0] == 250
        assert (
            await client.transaction("a@example.com", ["bob@example.net"], SIMPLE, ehlo=False)
            == 250
        )
    assert checks.seen == ["BARE_LF", "PIPELINING_ABUSE"]
