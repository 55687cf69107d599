"""Interoperability with dkimpy, both ways: what we sign dkimpy verifies, and the reverse.

Both algorithms, all four canonicalization pairs, and messages chosen to trip canonicalization
up: folded and repeated headers, trailing whitespace, an empty body, many trailing blank lines,
8-bit bytes, very long lines, a body without a final line break.
"""

from __future__ import annotations

import itertools
import time

import pytest
from tests.dkim.helpers import NOW, dkimpy_dns, ed_key, key_records, pem, rsa_key, verify

import dkim as dkimpy
from mailwarden.dkim import DKIMStatus, PrivateKey, SigningKey, sign, sign_many
from mailwarden.message import Message

DOMAIN = "example.org"
HEADER = (
    b"Received: from a.example by b.example; Mon, 1 Jan 2024 00:00:01 +0000\r\n"
    b"Received: from c.example by a.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:02 +0000\r\n"
    b"Message-ID: <interop@example.org>\r\n"
)
MESSAGES: dict[str, bytes] = {
    "plain": HEADER + b"Subject: hello\r\n\r\nHello Bob.\r\n",
    "folded-headers": HEADER
    + b"Subject: a subject\r\n\tfolded over\r\n   three lines\r\n"
    + b"X-Long: one\r\n two\r\n\r\nbody\r\n",
    "repeated-headers": HEADER
    + b"To: Carol <carol@example.net>\r\nSubject: one\r\nSubject: two\r\n\r\nbody\r\n",
    "trailing-whitespace": HEADER
    + b"Subject:   spaced  \t out \t\r\n\r\nline with spaces   \r\n\tindented\t \r\n"
    + b"  \t  \r\nmid  dle\t\ttabs\r\n",
    "empty-body": HEADER + b"Subject: nothing\r\n\r\n",
    "many-blank-lines": HEADER + b"Subject: blanks\r\n\r\ntext\r\n" + b"\r\n" * 60,
    "blank-lines-only": HEADER + b"Subject: blanks\r\n\r\n" + b"\r\n" * 7,
    "8bit": HEADER
    + b"Subject: caf\xc3\xa9 \xfc\xff\r\n\r\nCaf\xe9 \xe9t\xe9 \xff\xfe bytes \x80\r\n",
    "long-lines": HEADER
    + b"Subject: "
    + b"word " * 300
    + b"\r\n\r\n"
    + b"x" * 20000
    + b"\r\n"
    + b"y " * 5000
    + b"\r\n",
    "no-final-crlf": HEADER + b"Subject: no end\r\n\r\nlast  line\twithout break",
}
CANONS = list(itertools.product(("simple", "relaxed"), repeat=2))
ALGOS = ["rsa-sha256", "ed25519-sha256"]


def key_for(algorithm: str) -> PrivateKey:
    return ed_key() if algorithm.startswith("ed25519") else rsa_key(2048)


def records_for(algorithm: str) -> dict[str, str]:
    return key_records(DOMAIN, {"sel": key_for(algorithm)})


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("canon", CANONS, ids="/".join)
@pytest.mark.parametrize("name", list(MESSAGES))
def test_dkimpy_verifies_ours(name: str, canon: tuple[str, str], algorithm: str) -> None:
    message = MESSAGES[name]
    header = sign(
        message,
        DOMAIN,
        "sel",
        key_for(algorithm),
        algorithm=algorithm,
        canonicalization=canon,
        timestamp=int(time.time()),
    )
    dnsfunc = dkimpy_dns(records_for(algorithm))
    assert dkimpy.verify(header + message, dnsfunc=dnsfunc) is True


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("canon", CANONS, ids="/".join)
@pytest.mark.parametrize("name", list(MESSAGES))
async def test_we_verify_dkimpy(name: str, canon: tuple[str, str], algorithm: str) -> None:
    message = MESSAGES[name]
    header = dkimpy.sign(
        message,
        b"sel",
        DOMAIN.encode(),
        pem(key_for(algorithm)),
        canonicalize=(canon[0].encode(), canon[1].encode()),
        signature_algorithm=algorithm.encode(),
    )
    results = await verify(header + message, records_for(algorithm), now=time.time())
    assert [r.result for r in results] == [DKIMStatus.PASS], results[0].reason
    assert results[0].algorithm == algorithm
    assert results[0].canonicalization == "/".join(canon)


async def test_dual_signature_verifies_both_ways() -> None:
    message = MESSAGES["folded-headers"]
    headers = sign_many(
        message,
        DOMAIN,
        [SigningKey("rsa", rsa_key(2048)), SigningKey("ed", ed_key())],
        timestamp=NOW,
    )
    records = key_records(DOMAIN, {"rsa": rsa_key(2048), "ed": ed_key()})
    signed = b"".join(headers) + message
    results = await verify(signed, records)
    assert [(r.result, r.algorithm) for r in results] == [
        (DKIMStatus.PASS, "rsa-sha256"),
        (DKIMStatus.PASS, "ed25519-sha256"),
    ]
    verifier = dkimpy.DKIM(signed)
    dnsfunc = dkimpy_dns(records)
    assert verifier.verify(idx=0, dnsfunc=dnsfunc)
    assert verifier.verify(idx=1, dnsfunc=dnsfunc)


async def test_dkimpy_quoted_printable_identity_verifies() -> None:
    """dkimpy writes i= as given; RFC 6376 §2.11 makes it dkim-quoted-printable, so
    i=alice=40example.com is alice@example.com (issue 12, item 18)."""
    message = MESSAGES["plain"]
    header = dkimpy.sign(
        message, b"sel", DOMAIN.encode(), pem(ed_key()), identity=b"alice=40" + DOMAIN.encode(),
        signature_algorithm=b"ed25519-sha256",
    )  # fmt: skip
    assert b"i=alice=40" in header
    results = await verify(header + message, records_for("ed25519-sha256"), now=time.time())
    assert [r.result for r in results] == [DKIMStatus.PASS], results[0].reason
    assert results[0].identity == f"alice@{DOMAIN}"


def test_dkimpy_verifies_our_encoded_identity() -> None:
    identity = f"a;b=c d@{DOMAIN}"  # ";", "=" and space must be encoded in a tag value
    header = sign(MESSAGES["plain"], DOMAIN, "sel", ed_key(), identity=identity)
    assert b"i=a=3Bb=3Dc=20d@" in header.replace(b"\r\n ", b"")
    assert dkimpy.verify(
        header + MESSAGES["plain"], dnsfunc=dkimpy_dns(records_for("ed25519-sha256"))
    )


async def test_dkimpy_with_length_tag_is_flagged() -> None:
    message = MESSAGES["plain"]
    header = dkimpy.sign(message, b"sel", DOMAIN.encode(), pem(rsa_key(2048)), length=True)
    results = await verify(
        header + message + b"appended\r\n", records_for("rsa-sha256"), now=time.time()
    )
    assert results[0].result is DKIMStatus.PASS
    assert results[0].body_length_unsigned == len(b"appended\r\n")
    assert results[0].warnings


def test_message_model_keeps_every_byte() -> None:
    for data in MESSAGES.values():
        assert Message.from_bytes(data).raw == data
