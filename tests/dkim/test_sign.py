"""The signer (over-signing, folding, tags, errors) and key generation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from tests.dkim.helpers import NOW, ed_key, key_records, rsa_key, verify
from tests.dkim.test_verify import weak_rsa_key

from mailwarden.dkim import (
    DEFAULT_SIGNED_HEADERS,
    Algorithm,
    DKIMStatus,
    KeyType,
    SigningError,
    SigningKey,
    generate_key,
    key_record,
    load_private_key,
    parse_key_record,
    parse_tag_list,
    private_key_pem,
    sign,
    sign_header,
    sign_many,
    signed_header_names,
    txt_strings,
    write_private_key,
)
from mailwarden.dkim.keygen import zone_entry
from mailwarden.message import Message

MESSAGE = (
    b"Received: by relay\r\n"
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"To: Carol <carol@example.net>\r\n"
    b"Subject: hi\r\n"
    b"\r\n"
    b"Hello\r\n"
)


def tags_of(header: bytes) -> dict[str, str]:
    return parse_tag_list(header.split(b":", 1)[1])


def test_default_header_list_oversigns() -> None:
    tags = tags_of(sign(MESSAGE, "example.com", "s", ed_key(), timestamp=NOW))
    names = [h.strip() for h in tags["h"].split(":")]
    assert names.count("from") == 2
    assert names.count("to") == 3
    assert names.count("subject") == 2
    assert names.count("cc") == 1  # absent: named once, so none can be added
    assert "received" not in names
    assert set(names) == set(DEFAULT_SIGNED_HEADERS)


@pytest.mark.parametrize(
    ("oversign", "expected"),
    [
        # only the names listed are over-signed; the others are signed as often as they occur,
        # and not at all when absent (a list may add List-Id without breaking the signature)
        (["from", "to", "subject"], {"from": 2, "to": 3, "subject": 2, "cc": 0, "list-id": 0}),
        (["From ", "CC"], {"from": 2, "to": 2, "subject": 1, "cc": 1, "list-id": 0}),
        ([], {"from": 1, "to": 2, "subject": 1, "cc": 0, "list-id": 0}),
        (True, {"from": 2, "to": 3, "subject": 2, "cc": 1, "list-id": 1}),
        (False, {"from": 1, "to": 2, "subject": 1, "cc": 0, "list-id": 0}),
    ],
)
async def test_oversigning_chosen_names(
    oversign: bool | list[str], expected: dict[str, int]
) -> None:
    header = sign_many(
        MESSAGE, "example.com", [SigningKey("s", ed_key())], oversign=oversign, timestamp=NOW
    )[0]
    names = [h.strip() for h in tags_of(header)["h"].split(":")]
    assert {name: names.count(name) for name in expected} == expected
    records = key_records("example.com", {"s": ed_key()})
    assert (await verify(header + MESSAGE, records))[0].result is DKIMStatus.PASS


def test_custom_header_list_and_no_oversigning() -> None:
    msg = Message.from_bytes(MESSAGE)
    assert signed_header_names(msg, ["From", "to"], oversign=False) == ["from", "to", "to"]
    assert signed_header_names(msg, ["from", "FROM", "x-absent"]) == [
        "from",
        "from",
        "x-absent",
    ]
    with pytest.raises(SigningError, match="must include From"):
        sign(MESSAGE, "example.com", "s", ed_key(), headers=["to"])


def test_tags_and_folding() -> None:
    header = sign(
        MESSAGE,
        "Example.COM",
        "sel",
        rsa_key(2048),
        timestamp=NOW,
        expiration=NOW + 3600,
        identity="alice@mail.example.com",
    )
    assert header.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert header.endswith(b"\r\n")
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    tags = tags_of(header)
    assert tags["d"] == "example.com"
    assert (tags["t"], tags["x"]) == (str(NOW), str(NOW + 3600))
    assert tags["i"] == "alice@mail.example.com"
    assert "l" not in tags  # never by default
    assert "z" not in tags


async def test_all_four_canonicalizations_and_l_tag() -> None:
    records = key_records("example.com", {"s": ed_key()})
    for canon in [("simple", "simple"), ("simple", "relaxed"), ("relaxed", "simple")]:
        header = sign(MESSAGE, "example.com", "s", ed_key(), canonicalization=canon, timestamp=NOW)
        assert tags_of(header)["c"] == "/".join(canon)
        assert (await verify(header + MESSAGE, records))[0].result is DKIMStatus.PASS
    header = sign(MESSAGE, "example.com", "s", ed_key(), body_length=True, timestamp=NOW)
    assert tags_of(header)["l"] == str(len(b"Hello\r\n"))


def test_dual_signing_shares_the_body_hash() -> None:
    rsa_header, ed_header = sign_many(
        MESSAGE,
        "example.com",
        [SigningKey("r", rsa_key(2048)), SigningKey("e", ed_key())],
        timestamp=NOW,
    )
    assert tags_of(rsa_header)["a"] == "rsa-sha256"
    assert tags_of(ed_header)["a"] == "ed25519-sha256"
    assert tags_of(rsa_header)["bh"] == tags_of(ed_header)["bh"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"domain": "bad domain"}, "invalid domain"),
        ({"selector": "a b"}, "invalid selector"),
        ({"identity": "a@example.net"}, "not within"),
        ({"algorithm": "ed25519-sha256"}, "needs a ed25519 key"),
        ({"algorithm": "rsa-sha1"}, "RFC 8301"),
        ({"algorithm": "dsa"}, "unknown algorithm"),
        ({"expiration": NOW - 1}, "expiration"),
        ({"canonicalization": ("fancy", "simple")}, "canonicalization"),
        # RFC 5322 §3.6.8: a field name is printable ASCII without space or colon
        ({"headers": ["from", "x header"]}, "invalid header field name 'x header'"),
        ({"headers": ["from", "sub\tject"]}, "invalid header field name"),
        ({"headers": ["from", "a:b"]}, "invalid header field name 'a:b'"),
        ({"headers": ["from", "ünicode"]}, "invalid header field name"),
        ({"headers": ["from", "x\x00"]}, "invalid header field name"),
    ],
)
def test_signing_errors(kwargs: dict[str, object], error: str) -> None:
    args: dict[str, object] = {
        "domain": "example.com",
        "selector": "s",
        "private_key": rsa_key(2048),
        "timestamp": NOW,
    }
    args.update(kwargs)
    with pytest.raises(SigningError, match=error):
        sign(MESSAGE, **args)  # type: ignore[arg-type]


def test_short_rsa_keys_are_refused() -> None:
    """RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits (a 512-bit key used to
    sign without a word)."""
    small = weak_rsa_key()
    with pytest.raises(SigningError, match="512-bit RSA key is too short: RFC 8301"):
        sign(MESSAGE, "example.com", "s", small, timestamp=NOW)
    with pytest.raises(SigningError, match="RFC 8301"):
        sign_many(MESSAGE, "example.com", [SigningKey("e", ed_key()), SigningKey("r", small)])
    assert sign(MESSAGE, "example.com", "s", rsa_key(1024), timestamp=NOW)  # the minimum


def test_sign_header_template_errors() -> None:
    msg = Message.from_bytes(MESSAGE)
    with pytest.raises(SigningError, match="empty"):
        sign_header(msg, b" v=1; a=rsa-sha256; h=from; b=abc", rsa_key(2048))
    with pytest.raises(SigningError, match="malformed"):
        sign_header(msg, b" v=1; v=2; b=", rsa_key(2048))
    with pytest.raises(SigningError, match="unknown"):
        sign_header(msg, b" a=nope; h=from; b=", rsa_key(2048))
    with pytest.raises(SigningError, match="cannot sign: line 1"):
        sign(b" broken\r\n\r\n", "example.com", "s", rsa_key(2048))


def test_keygen_record_and_file(tmp_path: Path) -> None:
    key = generate_key(KeyType.RSA, 2048)
    path = tmp_path / "k.pem"
    write_private_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_private_key(path, key)
    loaded = load_private_key(path.read_bytes())
    assert loaded.private_numbers() == key.private_numbers()  # type: ignore[union-attr]
    record_text = key_record(key)
    strings = txt_strings(record_text)
    assert "".join(strings) == record_text
    assert all(len(s.encode()) <= 255 for s in strings)
    assert len(strings) == 2
    assert parse_key_record(record_text).key_bits == 2048
    entry = zone_entry("s", "example.com", record_text)
    assert entry.startswith('s._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=')
    with pytest.raises(ValueError, match="RSA key size"):
        generate_key("rsa", 512)
    ed = generate_key("ed25519")
    assert Algorithm.for_key(ed) is Algorithm.ED25519_SHA256
    assert load_private_key(private_key_pem(ed)).public_key() == ed.public_key()  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not a key", "neither PEM nor"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "cannot read"),
        (b"AAAA", "32 bytes"),
    ],
)
def test_load_private_key_errors(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        load_private_key(data)
