"""The verifier: every status, the §6.1 checks, key records, the key cache, tampering."""

from __future__ import annotations

import asyncio
import base64
import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.dkim.helpers import NOW, ed_key, key_records, resolver, rsa_key, verify

from mailwarden.authres import dkim_resinfo
from mailwarden.dkim import (
    BodyHasher,
    DKIMReason,
    DKIMStatus,
    DKIMVerifier,
    SignatureError,
    key_record,
    parse_signature,
    sign,
    sign_header,
)
from mailwarden.dns import Failure, RdType, StaticResolver
from mailwarden.message import Message

DOMAIN = "example.com"
MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: lunch\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"\r\n"
    b"Shall we?\r\n"
)


def rsa_records() -> dict[str, str]:
    return key_records(DOMAIN, {"s1": rsa_key(2048)})


def signed(**kw: object) -> bytes:
    header = sign(MESSAGE, DOMAIN, "s1", rsa_key(2048), timestamp=NOW, **kw)  # type: ignore[arg-type]
    return header + MESSAGE


def template(tags: str) -> bytes:
    """A signature with the given tags, signed with the s1 key (b= filled in)."""
    msg = Message.from_bytes(MESSAGE)
    return sign_header(msg, b" " + tags.encode() + b"; b=", rsa_key(2048)) + MESSAGE


async def test_pass_and_result_fields() -> None:
    results = await verify(signed(), rsa_records())
    assert len(results) == 1
    r = results[0]
    assert (r.result, r.reason_code) == (DKIMStatus.PASS, DKIMReason.VERIFIED)
    assert (r.domain, r.selector, r.algorithm, r.key_bits) == (DOMAIN, "s1", "rsa-sha256", 2048)
    assert (r.domain, r.selector, r.algorithm) == (DOMAIN, "s1", "rsa-sha256")
    assert r.signature_b.startswith(r.header_b)
    assert len(r.header_b) == 8
    assert r.identity == "@example.com"
    assert r.canonicalization == "relaxed/relaxed"
    assert r.timestamp == NOW
    assert dkim_resinfo(r).format().startswith("dkim=pass header.d=example.com header.i=")


async def test_no_signature_is_an_empty_list() -> None:
    assert await verify(MESSAGE, rsa_records()) == []


# -- tampering --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [b"From", b"To", b"Subject", b"Date", b"Message-ID"])
async def test_changing_a_signed_header_fails(name: bytes) -> None:
    data = signed()
    start = data.index(b"\r\n" + name + b":") + 2
    end = data.index(b"\r\n", start)
    tampered = data[:end] + b"x" + data[end:]
    results = await verify(tampered, rsa_records())
    assert results[0].result is DKIMStatus.FAIL
    assert results[0].reason == "signature did not verify"
    assert results[0].reason_code is DKIMReason.SIGNATURE_MISMATCH


@pytest.mark.parametrize("offset", [0, 4, -3])
async def test_changing_a_body_byte_fails(offset: int) -> None:
    data = bytearray(signed())
    body = data.index(b"\r\n\r\n") + 4
    position = body + offset if offset >= 0 else len(data) + offset
    data[position] ^= 0x01
    results = await verify(bytes(data), rsa_records())
    assert results[0].result is DKIMStatus.FAIL
    assert results[0].reason == "body hash did not verify"
    assert results[0].reason_code is DKIMReason.BODY_HASH_MISMATCH


async def test_adding_an_unsigned_header_passes() -> None:
    data = signed()
    results = await verify(b"X-Spam: no\r\nReceived: by mx\r\n" + data, rsa_records())
    assert results[0].result is DKIMStatus.PASS


@pytest.mark.parametrize("name", [b"Subject", b"From", b"Reply-To"])
async def test_adding_an_oversigned_header_fails(name: bytes) -> None:
    data = signed()
    results = await verify(
        data.replace(b"\r\n\r\n", b"\r\n" + name + b": extra\r\n\r\n", 1), rsa_records()
    )
    assert results[0].result is DKIMStatus.FAIL


async def test_relaxed_survives_whitespace_changes_simple_does_not() -> None:
    relaxed = signed()
    reformatted = relaxed.replace(b"Subject: lunch", b"subject:   lunch  ")
    assert (await verify(reformatted, rsa_records()))[0].result is DKIMStatus.PASS
    simple = signed(canonicalization=("simple", "simple"))
    reformatted = simple.replace(b"Subject: lunch", b"subject:   lunch  ")
    assert (await verify(reformatted, rsa_records()))[0].result is DKIMStatus.FAIL


# -- §6.1 checks and tag errors ---------------------------------------------------------------
BASE = "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1; h=from:to; bh={bh}"


def bh(relaxed: bool = True) -> str:
    digest = BodyHasher(Message.from_bytes(MESSAGE).body).digest(relaxed)
    return base64.b64encode(digest).decode()


@pytest.mark.parametrize(
    ("tags", "reason", "code"),
    [
        (
            "v=2; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA",
            "unsupported signature version",
            DKIMReason.UNSUPPORTED_VERSION,
        ),
        (
            "v=1; a=rsa-md5; d=example.com; s=s1; h=from; bh=AAAA",
            "unsupported algorithm",
            DKIMReason.UNSUPPORTED_ALGORITHM,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=to; bh=AAAA",
            "From is not signed",
            DKIMReason.FROM_NOT_SIGNED,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; h=from; bh=AAAA",
            "lacks required tag s=",
            DKIMReason.MISSING_TAG,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA; i=@example.net",
            "is not d= example.com or a subdomain",
            DKIMReason.IDENTITY_MISMATCH,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA; i=bob",
            "has no '@'",
            DKIMReason.SYNTAX_ERROR,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA; c=fancy",
            "canonicalization",
            DKIMReason.UNSUPPORTED_CANONICALIZATION,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA; q=http",
            "query method",
            DKIMReason.UNSUPPORTED_QUERY_METHOD,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA; t=20; x=10",
            "before t=",
            DKIMReason.SYNTAX_ERROR,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA; l=ten",
            "decimal",
            DKIMReason.SYNTAX_ERROR,
        ),
        (
            "v=1; a=rsa-sha256; d=exa mple.com; s=s1; h=from; bh=AAAA",
            "not a valid domain",
            DKIMReason.SYNTAX_ERROR,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s_1!; h=from; bh=AAAA",
            "not a valid selector",
            DKIMReason.SYNTAX_ERROR,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; d=example.net; s=s1; h=from; bh=AAAA",
            "more than once",
            DKIMReason.SYNTAX_ERROR,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AA!A",
            "bh= is not valid base64",
            DKIMReason.SYNTAX_ERROR,
        ),
        (
            "v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA; =x",
            "invalid tag name",
            DKIMReason.SYNTAX_ERROR,
        ),
    ],
)
async def test_permerror_reasons(tags: str, reason: str, code: DKIMReason) -> None:
    header = b"DKIM-Signature: " + tags.encode() + b"; b=AAAA\r\n"
    results = await verify(header + MESSAGE, rsa_records())
    assert results[0].result is DKIMStatus.PERMERROR
    assert reason in results[0].reason
    assert results[0].reason_code is code
    with pytest.raises(SignatureError, match=reason.replace("=", ".").replace("(", ".")) as raised:
        parse_signature(tags + "; b=AAAA")
    assert raised.value.code is code


async def test_subdomain_identity_passes_unless_key_is_strict() -> None:
    data = template(BASE.format(bh=bh()) + "; i=alice@mail.example.com")
    results = await verify(data, rsa_records())
    assert results[0].result is DKIMStatus.PASS
    assert results[0].identity == "alice@mail.example.com"
    strict = {"s1._domainkey.example.com": key_record(rsa_key(2048)) + "; t=s"}
    results = await verify(data, strict)
    assert results[0].result is DKIMStatus.PERMERROR
    assert "t=s" in results[0].reason
    assert results[0].reason_code is DKIMReason.IDENTITY_MISMATCH


async def test_expired_and_future_signatures() -> None:
    data = signed(expiration=NOW + 100)
    assert (await verify(data, rsa_records(), now=NOW + 50))[0].result is DKIMStatus.PASS
    late = (await verify(data, rsa_records(), now=NOW + 101))[0]
    assert late.result is DKIMStatus.PERMERROR
    assert (late.reason_code, "expired" in late.reason) == (DKIMReason.EXPIRED, True)
    early = (await verify(data, rsa_records(), now=NOW - 1000))[0]
    assert early.result is DKIMStatus.PERMERROR
    assert "in the future" in early.reason
    assert early.reason_code is DKIMReason.FUTURE_TIMESTAMP


async def test_length_tag_is_honoured_and_flagged() -> None:
    data = signed(body_length=True) + b"PS: click here\r\n"
    r = (await verify(data, rsa_records()))[0]
    assert r.result is DKIMStatus.PASS
    assert r.body_length == len(b"Shall we?\r\n")
    assert r.body_length_unsigned == len(b"PS: click here\r\n")
    assert "not covered" in r.reason
    too_long = template(BASE.format(bh=bh()) + "; l=9999")
    longer = (await verify(too_long, rsa_records()))[0]
    assert (longer.result, longer.reason_code) == (DKIMStatus.FAIL, DKIMReason.LENGTH_EXCEEDS_BODY)


async def test_rsa_sha1_is_policy_unless_allowed() -> None:
    msg = Message.from_bytes(MESSAGE)
    sha1_bh = base64.b64encode(BodyHasher(msg.body).digest(True, "sha1")).decode()
    tags = BASE.replace("rsa-sha256", "rsa-sha1").format(bh=sha1_bh)
    data = sign_header(msg, f" {tags}; b=".encode(), rsa_key(2048)) + MESSAGE
    r = (await verify(data, rsa_records()))[0]
    assert r.result is DKIMStatus.POLICY
    assert "RFC 8301" in r.reason
    assert r.reason_code is DKIMReason.SHA1_FORBIDDEN
    assert (await verify(data, rsa_records(), allow_sha1=True))[0].result is DKIMStatus.PASS


def _probable_prime(bits: int, rng: random.Random) -> int:
    while True:
        n = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23)):
            return n


def weak_rsa_key() -> rsa.RSAPrivateKey:
    """A 512-bit RSA key (cryptography refuses to generate one, but loads it)."""
    rng = random.Random(8301)
    e = 65537
    while True:
        p, q = _probable_prime(256, rng), _probable_prime(256, rng)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e and (p * q).bit_length() == 512:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p,
        q,
        d,
        rsa.rsa_crt_dmp1(d, p),
        rsa.rsa_crt_dmq1(d, q),
        rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


async def test_short_rsa_key_fails() -> None:
    small = weak_rsa_key()
    # sign() refuses such a key (RFC 8301 §3.2); the primitive signs any template as told
    template = sign(MESSAGE, DOMAIN, "weak", rsa_key(), timestamp=NOW).split(b":", 1)[1]
    template = template[: template.rindex(b"b=") + 2]
    data = sign_header(Message.from_bytes(MESSAGE), template, small) + MESSAGE
    r = (await verify(data, key_records(DOMAIN, {"weak": small})))[0]
    assert r.result is DKIMStatus.FAIL
    assert r.key_bits == 512
    assert "1024" in r.reason
    assert r.reason_code is DKIMReason.KEY_TOO_SHORT


@pytest.mark.parametrize(
    ("record", "status", "reason", "code"),
    [
        ("v=DKIM1; k=rsa; p=", DKIMStatus.PERMERROR, "revoked", DKIMReason.KEY_REVOKED),
        (
            "v=DKIM1; k=ed25519; p={ed}",
            DKIMStatus.PERMERROR,
            "does not match",
            DKIMReason.KEY_TYPE_MISMATCH,
        ),
        (
            "v=DKIM1; k=dsa; p={rsa}",
            DKIMStatus.PERMERROR,
            "unknown key type",
            DKIMReason.KEY_SYNTAX_ERROR,
        ),
        ("v=DKIM2; p={rsa}", DKIMStatus.PERMERROR, "version", DKIMReason.KEY_SYNTAX_ERROR),
        ("k=rsa; v=DKIM1; p={rsa}", DKIMStatus.PERMERROR, "first tag", DKIMReason.KEY_SYNTAX_ERROR),
        (
            "v=DKIM1; h=sha1; p={rsa}",
            DKIMStatus.PERMERROR,
            "does not allow sha256",
            DKIMReason.HASH_NOT_ALLOWED,
        ),
        (
            "v=DKIM1; s=tlsrpt; p={rsa}",
            DKIMStatus.PERMERROR,
            "not for email",
            DKIMReason.KEY_NOT_FOR_EMAIL,
        ),
        ("v=DKIM1; p=!!!", DKIMStatus.PERMERROR, "base64", DKIMReason.KEY_SYNTAX_ERROR),
        (
            "v=DKIM1; p=AAAA",
            DKIMStatus.PERMERROR,
            "not a valid RSA public key",
            DKIMReason.KEY_SYNTAX_ERROR,
        ),
        ("v=DKIM1; k=rsa", DKIMStatus.PERMERROR, "no p=", DKIMReason.KEY_SYNTAX_ERROR),
        (
            "v=DKIM1; t=y:x; s=email:*; h=sha1:sha256; p={rsa}",
            DKIMStatus.PASS,
            "testing",
            DKIMReason.VERIFIED,
        ),
    ],
)
async def test_key_records(record: str, status: DKIMStatus, reason: str, code: DKIMReason) -> None:
    der = (
        rsa_key(2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    raw = (
        ed_key()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    text = record.format(rsa=base64.b64encode(der).decode(), ed=base64.b64encode(raw).decode())
    r = (await verify(signed(), {"s1._domainkey.example.com": text}))[0]
    assert r.result is status, r.reason
    assert reason in r.reason
    assert r.reason_code is code
    if status is DKIMStatus.PASS:
        assert r.testing


async def test_dns_outcomes() -> None:
    static = StaticResolver()
    static.add("other.example.com", "TXT", "x")
    verifier = DKIMVerifier(static, clock=lambda: NOW)
    r = (await verifier.verify(signed()))[0]
    assert r.result is DKIMStatus.PERMERROR
    assert "no key" in r.reason
    assert r.reason_code is DKIMReason.NO_KEY
    assert (await verifier.verify(signed()))[0].reason == r.reason  # negative answer cached
    static.fail("s1._domainkey.example.com", "TXT", Failure.SERVFAIL)
    verifier = DKIMVerifier(static, clock=lambda: NOW)
    r = (await verifier.verify(signed()))[0]
    assert r.result is DKIMStatus.TEMPERROR
    assert "servfail" in r.reason
    assert r.reason_code is DKIMReason.DNS_ERROR
    assert static.queries.count(("s1._domainkey.example.com", RdType.TXT)) == 2


async def test_keys_fetched_concurrently_cached_and_expired() -> None:
    """Two selectors fetched together; a second message uses the cache until the TTL ends."""
    records = key_records(DOMAIN, {"s1": rsa_key(2048), "s2": ed_key()})
    static = resolver(records)
    now = [float(NOW)]
    verifier = DKIMVerifier(static, clock=lambda: now[0])
    data = sign(MESSAGE, DOMAIN, "s2", ed_key(), timestamp=NOW) + signed()
    delays: list[str] = []
    original = static.resolve

    async def slow(name: str, rdtype: RdType) -> object:
        delays.append(name)
        await asyncio.sleep(0.05)
        return await original(name, rdtype)

    static.resolve = slow  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await verifier.verify(data)
    assert loop.time() - started < 0.09  # both lookups were in flight together
    assert [r.result for r in results] == [DKIMStatus.PASS, DKIMStatus.PASS]
    assert sorted(delays) == ["s1._domainkey.example.com", "s2._domainkey.example.com"]
    await verifier.verify(data)
    assert len(delays) == 2  # cached
    now[0] += 3601
    await verifier.verify(data)
    assert len(delays) == 4  # expired


async def test_signature_cap() -> None:
    one = sign(MESSAGE, DOMAIN, "s1", rsa_key(2048), timestamp=NOW)
    data = one * 12 + MESSAGE
    results = await verify(data, rsa_records())
    assert [r.result for r in results[:10]] == [DKIMStatus.PASS] * 10
    assert [r.result for r in results[10:]] == [DKIMStatus.NEUTRAL] * 2
    assert "not checked" in results[10].reason
    assert results[10].reason_code is DKIMReason.NOT_CHECKED
    three = await verify(data, rsa_records(), max_signatures=3)
    assert [r.result for r in three].count(DKIMStatus.NEUTRAL) == 9


async def test_body_canonicalized_once_per_canonicalization(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three signatures, two body canonicalizations: the body is canonicalized twice."""
    from mailwarden.dkim import canon

    calls: list[bool] = []
    original = canon.canonicalize_body

    def counting(body: bytes, relaxed: bool) -> bytes:
        calls.append(relaxed)
        return original(body, relaxed)

    headers = [
        sign(MESSAGE, DOMAIN, "s1", rsa_key(2048), timestamp=NOW, canonicalization=c)
        for c in (("relaxed", "relaxed"), ("simple", "relaxed"), ("relaxed", "simple"))
    ]
    monkeypatch.setattr(canon, "canonicalize_body", counting)
    results = await verify(b"".join(headers) + MESSAGE, rsa_records())
    assert [r.result for r in results] == [DKIMStatus.PASS] * 3
    assert sorted(calls) == [False, True]


async def test_unreadable_message_bytes_give_a_permerror() -> None:
    results = await DKIMVerifier(StaticResolver()).verify(b" continuation first\r\n\r\n")
    assert results[0].result is DKIMStatus.PERMERROR
    assert "unreadable message" in results[0].reason
    assert results[0].reason_code is DKIMReason.UNREADABLE_MESSAGE


async def test_hundreds_of_signatures_stay_cheap() -> None:
    """Only the first 10 are checked (one key lookup); the rest are listed as not checked."""
    fields = b"".join(
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1; h=from; bh=AAAA; b=%08d\r\n" % n
        for n in range(900)
    )
    static = resolver(rsa_records())
    results = await DKIMVerifier(static, clock=lambda: NOW).verify(fields + MESSAGE)
    assert len(results) == 900
    assert [r.result for r in results[:10]] == [DKIMStatus.FAIL] * 10
    assert {r.result for r in results[10:]} == {DKIMStatus.NEUTRAL}
    assert len(static.queries) == 1
    assert len({r.header_b for r in results}) == 900
