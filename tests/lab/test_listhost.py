"""The lab's list manager: what it changes in a message, and the ARC set it adds, which
mailwarden's own verifier must accept (and which must carry its MX's verdict, not a forged one)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from lab.listhost import ListConfig, chain_validation, rewrite, seal_message

from mailwarden.arc import ARCStatus, ARCVerifier
from mailwarden.dkim import key_record, private_key_pem
from mailwarden.dns import StaticResolver
from mailwarden.message import Message

MX = "mx.lists.c.example"


@functools.cache
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def config(tmp: Path | None = None) -> ListConfig:
    return ListConfig(
        listen=("127.0.0.1", 10025),
        address="lab@lists.c.example",
        members=("bob@b.example",),
        tag="[lab]",
        footer="lab mailing list\nleave: lab-leave@lists.c.example",
        bounces="lab-bounces@lists.c.example",
        hostname=MX,
        authserv_id=MX,
        arc_domain="lists.c.example",
        arc_selector="arc",
        arc_key_file=str(tmp / "arc.pem") if tmp else "",
        dns_server="10.99.0.53",
        log_file="",
    )


MESSAGE = (
    b"Authentication-Results: " + MX.encode() + b"; iprev=pass policy.iprev=10.99.1.25;\r\n"
    b" spf=pass smtp.mailfrom=alice@a.example; dkim=pass header.d=a.example;\r\n"
    b" dmarc=pass header.from=a.example; arc=none\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=a.example; s=x; h=from:subject; bh=x; b=x\r\n"
    b"From: Alice <alice@a.example>\r\n"
    b"To: lab@lists.c.example\r\n"
    b"Subject: Meeting\r\n notes\r\n"
    b"Date: Tue, 01 Dec 2026 22:59:08 +0000\r\n"
    b"\r\n"
    b"Hello list,\r\nthe notes.\r\n"
)


def fields(message: bytes, name: str) -> list[str]:
    return [f.text() for f in Message.from_bytes(message).get_all(name)]


def test_the_subject_is_tagged_the_footer_added_and_list_fields_set() -> None:
    out = rewrite(MESSAGE, config())
    assert fields(out, "subject") == ["[lab] Meeting notes"]
    assert fields(out, "list-id") == ["Lab discussion <lab.lists.c.example>"]
    assert fields(out, "list-post") == ["<mailto:lab@lists.c.example>"]
    assert fields(out, "list-unsubscribe") == ["<mailto:lab-leave@lists.c.example>"]
    body = Message.from_bytes(out).body
    assert body == (
        b"Hello list,\r\nthe notes.\r\n-- \r\nlab mailing list\r\n"
        b"leave: lab-leave@lists.c.example\r\n"
    )
    # what the author signed is kept as it came
    assert fields(out, "dkim-signature") == fields(MESSAGE, "dkim-signature")
    assert fields(out, "from") == ["Alice <alice@a.example>"]


@pytest.mark.parametrize(
    ("extra", "subject"),
    [
        (b"Subject: [lab] Re: Meeting\r\n", "[lab] Re: Meeting"),  # tagged once only
        (b"List-Id: <forged.example>\r\nList-Id: <again.example>\r\nSubject: x\r\n", "[lab] x"),
    ],
)
def test_tags_and_list_fields_are_never_doubled(extra: bytes, subject: str) -> None:
    message = b"From: a@a.example\r\n" + extra + b"\r\nbody\r\n"
    out = rewrite(message, config())
    assert fields(out, "subject") == [subject]
    assert fields(out, "list-id") == ["Lab discussion <lab.lists.c.example>"]


@pytest.mark.parametrize(
    "content",
    [
        b"Content-Type: multipart/mixed; boundary=x\r\n",
        b"Content-Type: text/html\r\n",
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
    ],
)
def test_a_body_that_cannot_take_a_footer_safely_is_left_alone(content: bytes) -> None:
    message = b"From: a@a.example\r\nSubject: s\r\n" + content + b"\r\nQUJD\r\n"
    assert Message.from_bytes(rewrite(message, config())).body == b"QUJD\r\n"


def test_a_body_without_a_final_line_break_gets_one_before_the_footer() -> None:
    out = rewrite(b"From: a@a.example\r\n\r\nno newline", config())
    assert Message.from_bytes(out).body.startswith(b"no newline\r\n-- \r\n")  # type: ignore[union-attr]


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=120))
def test_any_subject_is_tagged_exactly_once(subject: str) -> None:
    message = f"From: a@a.example\r\nSubject: {subject}\r\n\r\nx\r\n".encode()
    [out] = fields(rewrite(message, config()), "subject")
    given_subject = subject.strip(" \t")
    tagged = given_subject if given_subject.startswith("[lab]") else f"[lab] {given_subject}"
    assert out == tagged.strip(" ")


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([f"{MX}; arc=pass"], ARCStatus.PASS),
        ([f"{MX}; spf=pass; arc=fail (bad seal)"], ARCStatus.FAIL),
        ([f"{MX}; arc=none"], ARCStatus.NONE),
        # only our MX's verdict counts: another server's claim is ignored
        (["evil.example; arc=pass", f"{MX}; arc=fail"], ARCStatus.FAIL),
        (["evil.example; arc=pass"], ARCStatus.NONE),
        ([f"{MX.upper()}; ARC=Pass"], ARCStatus.PASS),
    ],
)
def test_chain_validation_is_what_our_mx_said(results: list[str], expected: ARCStatus) -> None:
    header = "".join(f"Authentication-Results: {r}\r\n" for r in results)
    assert chain_validation(Message.from_bytes(f"{header}\r\n".encode()), MX) is expected


def test_a_chain_no_one_of_ours_vouched_for_counts_as_failed() -> None:
    message = Message.from_bytes(b"ARC-Seal: i=1; cv=none\r\n\r\n")
    assert chain_validation(message, MX) is ARCStatus.FAIL


async def test_the_seal_verifies_and_copies_our_mx_verdict(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    sealed = seal_message(rewrite(MESSAGE, cfg), cfg, private_key_pem(key()))
    [aar] = fields(sealed, "arc-authentication-results")
    assert aar.startswith(f"i=1; {MX}; iprev=pass")
    assert "dmarc=pass" in aar
    [seal] = fields(sealed, "arc-seal")
    assert "cv=none" in seal.replace(" ", "")
    resolver = StaticResolver({"arc._domainkey.lists.c.example": {"TXT": key_record(key())}})
    result = await ARCVerifier(resolver).verify(Message.from_bytes(sealed))
    assert result.result == "pass", result
    # the next hop's change breaks it
    tampered = sealed.replace(b"the notes.", b"the notes!")
    broken = await ARCVerifier(resolver).verify(Message.from_bytes(tampered))
    assert broken.result == "fail"
