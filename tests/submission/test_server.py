"""The submission server over real sockets: TLS before AUTH, who may send what, signing."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from tests.dkim.helpers import dkimpy_dns
from tests.gateway.helpers import Client, messages
from tests.submission.helpers import (
    HOST,
    PASSWORD,
    connect_starttls,
    connect_tls,
    dkim_records,
    login,
    make_settings,
    message,
    plain,
    running,
    send,
)

import dkim
from mailwarden.gateway import MaildirRelay


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    from tests.submission.helpers import add_user

    made = make_settings(tmp_path)
    add_user(made, "alice@a.example", "alice.smith@a.example")
    add_user(made, "admin@a.example", "@a.example")
    return made


async def test_starttls_port_refuses_auth_and_mail_in_clear(
    settings, tls_context: ssl.SSLContext, sink: MaildirRelay
) -> None:
    async with running(settings, tls_context, sink) as server:
        client = await Client.connect(server.addresses[0])
        code, text = await client.cmd("EHLO client.a.example")
        assert code == 250
        assert "STARTTLS" in text
        assert "AUTH" not in text
        assert await client.cmd(f"AUTH PLAIN {plain('alice@a.example', PASSWORD)}") == (
            538,
            "5.7.11 Encryption required for requested authentication mechanism",
        )
        code, text = await client.cmd("MAIL FROM:<alice@a.example>")
        assert (code, text) == (530, "5.7.0 Must issue a STARTTLS command first")
        assert (await client.cmd("STARTTLS"))[0] == 220
        await client.starttls(HOST)
        code, text = await client.cmd("EHLO client.a.example")
        assert "AUTH PLAIN LOGIN" in text
        assert "STARTTLS" not in text
        assert (await client.cmd("MAIL FROM:<alice@a.example>"))[0] == 530  # not yet authed
        assert await login(client) == 235
        code, text = await client.cmd("EHLO again.a.example")
        assert "AUTH" not in text  # authenticated once per session
        assert (await client.cmd("AUTH PLAIN =")) == (503, "5.5.1 Error: already authenticated")


async def test_message_is_signed_and_relayed_on_both_ports(
    settings, tls_context: ssl.SSLContext, sink: MaildirRelay, maildir: Path
) -> None:
    async with running(settings, tls_context, sink) as server:
        for client in (
            await connect_starttls(server.addresses[0]),
            await connect_tls(server.addresses[1]),
        ):
            assert await login(client) == 235
            code, text = await send(client, "alice@a.example", ["bob@b.example"])
            assert code == 250, text
    delivered = messages(maildir)
    assert len(delivered) == 2
    for raw in delivered:
        body = raw.split(b"\r\n", 2)[2]  # without the sink's Return-Path and Delivered-To
        assert b"with ESMTPSA" in body  # RFC 3848
        assert body.count(b"DKIM-Signature:") == 2  # RSA and Ed25519 (RFC 8463 §6)
        assert b"\r\nDate: " in body
        assert b"\r\nMessage-ID: <" in body
        dns = dkimpy_dns(dkim_records())
        verifier = dkim.DKIM(body)
        for index in range(2):
            assert verifier.verify(idx=index, dnsfunc=dns), f"signature {index} fails"
    [first, _second] = [r for r in server.gateways[0].log.records if r["type"] == "transaction"]
    assert first["auth"] == "alice@a.example"
    assert first["dkim"] == "signed"


@pytest.mark.parametrize(
    ("user", "sender", "from_", "expected"),
    [
        ("alice@a.example", "alice@a.example", "alice@a.example", 250),
        ("alice@a.example", "alice.smith@a.example", "Alice.Smith@A.EXAMPLE", 250),  # alias
        ("alice@a.example", "alice+news@a.example", "alice+x@a.example", 250),  # subaddress
        ("alice@a.example", "", "alice@a.example", 250),  # the null sender, From checked
        ("alice@a.example", "bob@a.example", "alice@a.example", 550),  # envelope not hers
        ("alice@a.example", "alice@a.example", "bob@a.example", 550),  # From not hers
        ("alice@a.example", "alice@a.example.evil", "alice@a.example", 550),
        ("alice@a.example", "alice@a.example", "ceo@bank.example", 550),
        ("admin@a.example", "anyone@a.example", "someone@a.example", 250),  # whole domain
        ("admin@a.example", "anyone@sub.a.example", "anyone@a.example", 550),
    ],
)
async def test_who_may_send_as_whom(
    settings,
    tls_context: ssl.SSLContext,
    sink: MaildirRelay,
    user: str,
    sender: str,
    from_: str,
    expected: int,
) -> None:
    async with running(settings, tls_context, sink) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client, user) == 235
        code, text = await send(client, sender, ["bob@b.example"], message(from_))
    assert code == expected, text
    if expected == 550:
        assert text.startswith("5.7.1 ")
        assert "is not yours" in text
        assert f"(authenticated as {user})" in text


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("From: alice@a.example\r\nFrom: alice@a.example\r\n", "2 From fields"),
        ("", "no From field"),
        ("From: alice@a.example, bob@b.example\r\n", "several Author Domains"),
        ("From: alice@a.example <<\r\n", "unparseable From"),
        ("From: \r\n", "no address"),
        ("From: alice@[192.0.2.1]\r\n", "domain literal"),
        ("From: alice@a.example\r\nbroken header line\r\n", "Message refused"),
    ],
)
async def test_an_ambiguous_from_is_refused(
    settings, tls_context: ssl.SSLContext, sink: MaildirRelay, header: str, reason: str
) -> None:
    body = f"{header}To: bob@b.example\r\nSubject: x\r\n\r\nhi\r\n.\r\n".encode()
    async with running(settings, tls_context, sink) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client) == 235
        code, text = await send(client, "alice@a.example", ["bob@b.example"], body)
    assert code == 550, text
    assert reason in text


async def test_sender_and_reply_to_are_free(
    settings, tls_context: ssl.SSLContext, sink: MaildirRelay
) -> None:
    extra = "Sender: secretary@elsewhere.example\r\nReply-To: list@lists.example\r\n"
    async with running(settings, tls_context, sink) as server:
        client = await connect_tls(server.addresses[1])
        assert await login(client) == 235
        code, text = await send(client, "alice@a.example", ["bob@b.example"], message(extra=extra))
    assert code == 250, text


async def test_auth_login_and_initial_responses(
    settings, tls_context: ssl.SSLContext, sink: MaildirRelay
) -> None:
    import base64

    user = base64.b64encode(b"alice@a.example").decode()
    secret = base64.b64encode(PASSWORD.encode()).decode()
    async with running(settings, tls_context, sink) as server:
        client = await connect_tls(server.addresses[1])
        assert await client.cmd("AUTH LOGIN") == (334, "VXNlcm5hbWU6")
        assert await client.cmd(user) == (334, "UGFzc3dvcmQ6")
        assert (await client.cmd(secret))[0] == 235
        other = await connect_tls(server.addresses[1])
        assert await other.cmd(f"AUTH LOGIN {user}") == (334, "UGFzc3dvcmQ6")
        assert (await other.cmd(secret))[0] == 235
        third = await connect_tls(server.addresses[1])
        assert await third.cmd("AUTH PLAIN") == (334, "")
        assert (await third.cmd(plain("alice@a.example", PASSWORD)))[0] == 235


HOSTILE = [
    ("AUTH PLAIN !!!notbase64", None, 501, "5.5.2"),
    ("AUTH PLAIN YWxpY2U", None, 501, "5.5.2"),  # unpadded
    ("AUTH PLAIN " + plain("alice@a.example", PASSWORD) + " extra", None, 501, "5.5.4"),
    ("AUTH PLAIN", "*", 501, "5.7.0"),  # cancelled
    ("AUTH PLAIN", "a" * 5000, 500, "5.5.6"),  # a huge blob
    ("AUTH PLAIN " + "QUFB" * 400, None, 500, "5.5.6"),
    ("AUTH CRAM-MD5", None, 504, "5.5.4"),
    ("AUTH", None, 501, "5.5.4"),
    ("AUTH PLAIN " + plain("alice@a.example", PASSWORD, "bob@a.example"), None, 535, "5.7.8"),
    ("AUTH PLAIN " + plain("", PASSWORD), None, 535, "5.7.8"),  # empty authcid
    ("AUTH PLAIN " + plain("alice@a.example", ""), None, 535, "5.7.8"),  # empty password
    ("AUTH PLAIN AGFsaWNlQGEuZXhhbXBsZQBwdwB4", None, 535, "5.7.8"),  # three NULs
    ("AUTH PLAIN YWxpY2VAYS5leGFtcGxl", None, 535, "5.7.8"),  # no NUL at all
    ("AUTH PLAIN " + plain("alice@a.example", PASSWORD + "\x00"), None, 535, "5.7.8"),
    ("AUTH PLAIN " + plain("alice\x01@a.example", PASSWORD), None, 535, "5.7.8"),
    ("AUTH PLAIN " + plain("alice@a.example", "wrong"), None, 535, "5.7.8"),
    ("AUTH PLAIN " + plain("nobody@a.example", PASSWORD), None, 535, "5.7.8"),
    ("AUTH LOGIN", "*", 501, "5.7.0"),
]


@pytest.mark.parametrize(("line", "then", "code", "status"), HOSTILE)
async def test_hostile_auth_is_refused_and_never_authenticates(
    settings,
    tls_context: ssl.SSLContext,
    sink: MaildirRelay,
    line: str,
    then: str | None,
    code: int,
    status: str,
) -> None:
    async with running(settings, tls_context, sink) as server:
        client = await connect_tls(server.addresses[1])
        answer = await client.cmd(line)
        if then is not None:
            assert answer[0] == 334
            answer = await client.cmd(then)
        assert answer[0] == code, answer
        assert answer[1].startswith(status), answer
        assert (await client.cmd("MAIL FROM:<alice@a.example>"))[0] == 530
        # the session goes on: a good login still works
        assert await login(client) == 235
