"""The signer of our own mail: both signatures (RFC 8463 §6) that dkimpy and our verifier
accept, the header list and over-signing, the domain choice, and keys that change while it
runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tests.dkim.helpers import dkimpy_dns, rsa_key, verify
from tests.signing.helpers import START

import dkim as dkimpy
from mailwarden.dkim import (
    DKIMStatus,
    KeyType,
    PrivateKey,
    key_record,
    parse_tag_list,
    write_private_key,
)
from mailwarden.settings import load_settings, settings_from_mapping
from mailwarden.signing import (
    KeyStore,
    ManagedKey,
    MemoryStore,
    Signer,
    SigningError,
    Stage,
    StoreError,
    store_path,
)

RSA = rsa_key(2048)
ED = ed25519.Ed25519PrivateKey.generate()
MESSAGE = (
    b"From: Alice <alice@a.example>\r\n"
    b"To: Bob <bob@b.example>\r\n"
    b"Subject: hello\r\n"
    b"Date: Wed, 01 May 2024 10:00:00 +0000\r\n"
    b"Message-ID: <1@a.example>\r\n"
    b"\r\n"
    b"Hello Bob.\r\n"
)


def add(store: KeyStore, domain: str, selector: str, private: PrivateKey, stage: Stage) -> str:
    key_type = KeyType.ED25519 if isinstance(private, ed25519.Ed25519PrivateKey) else KeyType.RSA
    record = key_record(private)
    store.save(
        [
            *store.load(),
            ManagedKey(domain, selector, key_type, 256, record, START, stage, START),
        ]
    )
    store.write_private_key(domain, selector, private)
    return record


def dual(domain: str = "a.example") -> tuple[Signer, dict[str, str]]:
    store = MemoryStore()
    records = {
        f"ed1._domainkey.{domain}": add(store, domain, "ed1", ED, Stage.ACTIVE),
        f"rsa1._domainkey.{domain}": add(store, domain, "rsa1", RSA, Stage.ACTIVE),
    }
    return Signer(store, clock=lambda: START), records


def fields(header: bytes) -> list[bytes]:
    return [b"DKIM-Signature:" + part for part in header.split(b"DKIM-Signature:")[1:]]


async def test_two_signatures_that_both_verifiers_accept() -> None:
    signer, records = dual()
    header = await signer.sign(MESSAGE, "a.example")
    signed = header + MESSAGE
    found = fields(header)
    assert len(found) == 2
    tags = [parse_tag_list(f.split(b":", 1)[1]) for f in found]
    assert [t["a"] for t in tags] == ["rsa-sha256", "ed25519-sha256"]  # RSA first
    assert {t["d"] for t in tags} == {"a.example"}
    assert all(t["c"] == "relaxed/relaxed" and "l" not in t for t in tags)
    assert tags[0]["bh"] == tags[1]["bh"]
    assert int(tags[0]["t"]) == int(START)
    results = await verify(signed, records, now=START)
    assert [r.result for r in results] == [DKIMStatus.PASS, DKIMStatus.PASS]
    dns = dkimpy_dns(records)
    verifier = dkimpy.DKIM(signed)
    assert verifier.verify(idx=0, dnsfunc=dns)
    assert verifier.verify(idx=1, dnsfunc=dns)


async def test_the_header_list_oversigns_what_a_replay_would_add() -> None:
    signer, records = dual()
    header = await signer.sign(MESSAGE, "a.example")
    names = [h.strip() for h in parse_tag_list(fields(header)[0].split(b":", 1)[1])["h"].split(":")]
    assert names.count("from") == 2
    assert names.count("subject") == 2
    assert names.count("reply-to") == 1  # absent, over-signed: none can be added
    assert names.count("message-id") == 1  # signed, not over-signed
    assert "list-id" not in names  # absent and not over-signed: a list may add it
    for added in (
        b"Subject: buy now",
        b"From: Mallory <m@evil.example>",
        b"Reply-To: m@evil.example",
        b"Date: Thu, 02 May 2024 00:00:00 +0000",
        b"To: eve@evil.example",
        b"Cc: eve@evil.example",
    ):
        tampered = header + MESSAGE.replace(b"\r\n\r\n", b"\r\n" + added + b"\r\n\r\n", 1)
        results = await verify(tampered, records, now=START)
        assert {r.result for r in results} == {DKIMStatus.FAIL}, added
    listed = header + b"List-Id: <list.b.example>\r\n" + MESSAGE
    assert {r.result for r in await verify(listed, records, now=START)} == {DKIMStatus.PASS}


async def test_no_key_no_signature() -> None:
    signer, _ = dual()
    assert await signer.sign(MESSAGE, "other.example") == b""
    assert await signer.sign(MESSAGE, "example") == b""  # never a top-level domain
    assert await signer.sign(MESSAGE, "") == b""
    assert await signer.sign(MESSAGE, "a..example") == b""
    assert await signer.sign(MESSAGE, "\udcff.example") == b""


async def test_a_subdomain_signs_with_the_parent_domain() -> None:
    signer, records = dual()
    message = MESSAGE.replace(b"alice@a.example", b"alice@news.a.example")
    header = await signer.sign(message, "News.A.Example.")
    assert {parse_tag_list(f.split(b":", 1)[1])["d"] for f in fields(header)} == {"a.example"}
    results = await verify(header + message, records, now=START)
    assert [r.result for r in results] == [DKIMStatus.PASS, DKIMStatus.PASS]


@pytest.mark.parametrize("stage", [Stage.PENDING, Stage.RETIRED, Stage.REVOKE, Stage.REVOKED])
async def test_only_active_keys_sign(stage: Stage) -> None:
    store = MemoryStore()
    add(store, "a.example", "s", ED, stage)
    assert await Signer(store).sign(MESSAGE, "a.example") == b""


async def test_a_key_activated_elsewhere_signs_the_next_message() -> None:
    store = MemoryStore()
    add(store, "a.example", "ed1", ED, Stage.ACTIVE)
    signer = Signer(store, clock=lambda: START)
    assert len(fields(await signer.sign(MESSAGE, "a.example"))) == 1
    # another process (cron) activates an RSA key and retires the Ed25519 one
    keys = [k.moved(Stage.RETIRED, START, "replaced") for k in store.load()]
    store.save(keys)
    add(store, "a.example", "rsa2", RSA, Stage.ACTIVE)
    header = await signer.sign(MESSAGE, "a.example")
    assert [parse_tag_list(f.split(b":", 1)[1])["s"] for f in fields(header)] == ["rsa2"]


async def test_large_messages_are_signed_too() -> None:
    signer, records = dual()
    message = MESSAGE + b"x" * 998 + b"\r\n" + (b"line\r\n" * 100_000)
    header = await signer.sign(message, "a.example")
    results = await verify(header + message, records, now=START)
    assert [r.result for r in results] == [DKIMStatus.PASS, DKIMStatus.PASS]


@pytest.mark.parametrize(
    "message",
    [
        b"To: bob@b.example\r\nSubject: no author\r\n\r\nbody\r\n",
        b"not a header at all",
    ],
)
async def test_an_unsignable_message_raises_signing_error(message: bytes) -> None:
    signer, _ = dual()
    with pytest.raises(SigningError):
        await signer.sign(message, "a.example")


async def test_from_settings_reads_the_data_directory(tmp_path: Path) -> None:
    settings = load_settings(None, overrides={"gateway.data_dir": (str(tmp_path), "--data-dir")})
    assert store_path(settings) == tmp_path / "dkim"
    signer = Signer.from_settings(settings)
    assert await signer.sign(MESSAGE, "a.example") == b""  # nothing there yet
    assert not (tmp_path / "dkim").exists()  # and nothing made
    add(signer.store, "a.example", "ed1", ED, Stage.ACTIVE)
    assert len(fields(await signer.sign(MESSAGE, "a.example"))) == 1
    (tmp_path / "dkim" / "state.json").write_text("{broken")
    with pytest.raises(StoreError):
        await signer.sign(MESSAGE, "a.example")


async def test_keys_of_ones_own_sign_beside_the_rotated_ones(tmp_path: Path) -> None:
    """[[signing.keys]]: an existing key (say OpenDKIM's) signs with the store's keys."""
    pem = tmp_path / "old.pem"
    write_private_key(pem, RSA)
    settings = settings_from_mapping(
        {
            "gateway": {"data_dir": str(tmp_path)},
            "signing": {"keys": [{"domain": "A.Example", "selector": "old", "key_file": str(pem)}]},
        }
    )
    signer = Signer.from_settings(settings)
    assert signer.domains() == ["a.example"]
    add(signer.store, "a.example", "ed1", ED, Stage.ACTIVE)
    header = await signer.sign(MESSAGE, "a.example")
    selectors = [parse_tag_list(f.split(b":", 1)[1])["s"] for f in fields(header)]
    assert selectors == ["old", "ed1"]  # RSA first
    records = {
        "old._domainkey.a.example": key_record(RSA),
        "ed1._domainkey.a.example": key_record(ED),
    }
    results = await verify(header + MESSAGE, records, now=time.time())  # the real clock
    assert [r.result for r in results] == [DKIMStatus.PASS, DKIMStatus.PASS]


def test_an_unreadable_key_of_ones_own_is_refused_at_once(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {
            "signing": {
                "keys": [
                    {"domain": "a.example", "selector": "s", "key_file": str(tmp_path / "none")}
                ]
            }
        }
    )
    with pytest.raises(ValueError, match="cannot read"):
        Signer.from_settings(settings)
    (tmp_path / "none").write_text("not a key")
    with pytest.raises(ValueError, match="none"):
        Signer.from_settings(settings)
