"""Sealing and validating our own chains: round trips, tampering, limits, cv=fail chains."""

from __future__ import annotations

import asyncio
import base64

import pytest
from tests.arc.helpers import (
    HOPS,
    NOW,
    add_footer,
    base_message,
    ed_key,
    hop,
    records,
    replace_header,
    resolver,
    rsa_key,
    sealed_by,
    swap,
    verifier,
)

import dkim
from mailwarden.arc import (
    MAX_INSTANCE,
    ARCReason,
    ARCSetFields,
    ARCStatus,
    ARCVerifier,
    SealingError,
    collect_sets,
    header_block,
    parse_seal,
    seal,
)
from mailwarden.arc.verify import seal_input
from mailwarden.dkim import (
    Algorithm,
    BodyHasher,
    KeyFailure,
    KeyRecord,
    parse_key_record,
    sign_data,
    sign_header,
    verify_data,
)
from mailwarden.dns import Answer, Failure, RdType, StaticResolver
from mailwarden.message import Message


@pytest.mark.parametrize(("domain", "selector"), [("list.example", "rsa"), ("list.example", "ed")])
async def test_seal_then_verify_passes(domain: str, selector: str) -> None:
    message = sealed_by(base_message(), domain, selector, ARCStatus.NONE)
    result = await verifier().verify(message)
    assert result.result is ARCStatus.PASS, result.reason
    assert result.reason_code is ARCReason.VALIDATED
    assert result.instances == 1
    assert result.oldest_pass == 0
    (only,) = result.sets
    assert (only.seal_domain, only.seal_selector) == (domain, selector)
    assert (only.ams_domain, only.ams_selector) == (domain, selector)
    assert only.cv == "none"
    assert only.seal_algorithm == ("ed25519-sha256" if selector == "ed" else "rsa-sha256")
    assert only.authserv_id == "mx.list.example"
    assert only.auth_results is not None
    assert [r.method for r in only.auth_results.results] == ["spf", "dmarc"]
    assert result.resinfo().format() == ("arc=pass (i=1 d=list.example) header.oldest-pass=0")


async def test_seal_output_form() -> None:
    fields = seal(
        base_message(),
        domain="List.Example.",
        selector="rsa",
        private_key=rsa_key(2048),
        authserv_id="mx.list.example",
        auth_results="mx.list.example; spf=pass smtp.mailfrom=origin.example; dkim=none",
        chain_validation="none",
        timestamp=NOW,
    )
    names = [name for name, _ in fields]
    assert names == ["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"]
    values = dict(fields)
    assert values["ARC-Authentication-Results"] == (
        "i=1; mx.list.example; spf=pass smtp.mailfrom=origin.example;\r\n dkim=none"
    )
    seal_tags = parse_seal(values["ARC-Seal"])
    assert (seal_tags.domain, seal_tags.instance, seal_tags.cv) == ("list.example", 1, "none")
    assert seal_tags.timestamp == NOW
    ams = values["ARC-Message-Signature"]
    assert "c=relaxed/relaxed" in ams
    assert "h=from:subject:date:message-id:to:mime-version:content-type" in ams
    assert "arc-seal" not in ams.lower().split("h=")[1].split(";")[0]
    for value in values.values():  # folded between tags only; lines of reasonable length
        assert all(line.startswith(" ") for line in value.split("\r\n")[1:])


async def test_three_hops_mixed_algorithms() -> None:
    message = base_message()
    for domain, selector in HOPS:
        message, before = await hop(message, domain, selector)
        assert before.result in (ARCStatus.NONE, ARCStatus.PASS), before.reason
    result = await verifier().verify(message)
    assert result.result is ARCStatus.PASS, result.reason
    assert result.instances == 3
    assert result.oldest_pass == 0
    assert [s.cv for s in result.sets] == ["none", "pass", "pass"]
    assert [s.seal_domain for s in result.sets] == ["list.example", "fwd.example", "relay.example"]
    assert all(s.ams_result is ARCStatus.PASS for s in result.sets)
    assert result.sets[2].auth_results is not None
    assert result.sets[2].auth_results.by_method("arc")[0].result == "pass"


async def test_modified_after_sealing_gives_oldest_pass() -> None:
    message, _ = await hop(base_message(), "list.example", "rsa")
    # the second hop validates first, then adds a footer, then seals (a mailing list)
    message, before = await hop(message, "fwd.example", "sel1", change=add_footer)
    assert before.result is ARCStatus.PASS
    result = await verifier().verify(message)
    assert result.result is ARCStatus.PASS, result.reason
    assert result.oldest_pass == 2
    assert result.sets[0].ams_result is ARCStatus.FAIL
    assert result.sets[0].ams_reason == "body hash did not verify"
    assert result.sets[1].ams_result is ARCStatus.PASS
    assert "header.oldest-pass=2" in result.resinfo(remote_ip="192.0.2.1").format()
    assert "smtp.remote-ip=192.0.2.1" in result.resinfo(remote_ip="192.0.2.1").format()


async def test_tampered_body_fails() -> None:
    message = sealed_by(base_message(), "list.example", "rsa", "none")
    result = await verifier().verify(add_footer(message))
    assert result.result is ARCStatus.FAIL
    assert result.reason == "ARC-Message-Signature i=1 did not verify: body hash did not verify"
    assert result.reason_code is ARCReason.AMS_INVALID
    assert result.oldest_pass is None


async def test_tampered_signed_header_fails() -> None:
    message = sealed_by(base_message(), "list.example", "ed", "none")
    changed = replace_header(message, b"Subject", b"Subject: Hello, changed")
    result = await verifier().verify(changed)
    assert result.result is ARCStatus.FAIL
    assert result.reason == "ARC-Message-Signature i=1 did not verify: signature did not verify"
    assert result.reason_code is ARCReason.AMS_INVALID


async def test_tampered_aar_breaks_the_seal() -> None:
    message, _ = await hop(base_message(), "list.example", "rsa")
    message, _ = await hop(message, "fwd.example", "sel1")
    sets = collect_sets(message)
    first_aar = sets[0].aar
    forged = first_aar.raw.replace(b"dmarc=pass", b"dmarc=fail")
    assert forged != first_aar.raw
    result = await verifier().verify(swap(message, first_aar, forged))
    assert result.result is ARCStatus.FAIL
    # AMS(2) does not sign AAR(1) here; the seals do: the newest one notices first
    assert result.reason == "ARC-Seal i=2 did not verify: signature did not verify"
    assert result.reason_code is ARCReason.SEAL_INVALID


async def test_tampered_seal_cv() -> None:
    message = sealed_by(base_message(), "list.example", "rsa", "none")
    seal_field = message.get("ARC-Seal")
    assert seal_field is not None
    forged = seal_field.raw.replace(b"cv=none", b"cv=pass")
    result = await verifier().verify(swap(message, seal_field, forged))
    assert result.result is ARCStatus.FAIL
    assert result.reason == "ARC-Seal i=1 has cv=pass, expected cv=none"
    assert result.reason_code is ARCReason.CV_MISMATCH


async def test_failed_chain_is_sealed_alone_and_stays_failed() -> None:
    message = sealed_by(base_message(), "list.example", "rsa", "none")
    broken = add_footer(message)
    message2, before = await hop(broken, "fwd.example", "sel1")
    assert before.result is ARCStatus.FAIL
    assert parse_seal(message2.get_all("ARC-Seal")[0].value).cv is ARCStatus.FAIL
    result = await verifier().verify(message2)
    assert result.result is ARCStatus.FAIL
    assert result.reason == "ARC-Seal i=2 says cv=fail: the chain was already broken"
    assert result.reason_code is ARCReason.CHAIN_FAILED
    # RFC 8617 §5.1.2: the cv=fail seal covers its own set only; it verifies as such
    sets = collect_sets(message2)
    latest = parse_seal(sets[1].seal.value)
    public = rsa_key(1024).public_key()
    assert verify_data(public, Algorithm.RSA_SHA256, seal_input(sets[1:]), latest.signature)
    # a chain whose latest seal says cv=fail is terminated: sealing adds nothing
    again = seal(
        message2,
        domain="relay.example",
        selector="ed",
        private_key=ed_key(1),
        authserv_id="mx.relay.example",
        auth_results="arc=fail",
        chain_validation=ARCStatus.FAIL,
        timestamp=NOW,
    )
    assert again == []


async def test_fifty_sets_pass_and_the_fifty_first_is_refused() -> None:
    message = base_message()
    cv = ARCStatus.NONE
    for _ in range(MAX_INSTANCE):
        message = sealed_by(message, "relay.example", "ed", cv, auth_results="arc=pass")
        cv = ARCStatus.PASS
    result = await verifier().verify(message)
    assert result.result is ARCStatus.PASS, result.reason
    assert result.instances == MAX_INSTANCE
    with pytest.raises(SealingError, match="at most 50"):
        sealed_by(message, "relay.example", "ed", ARCStatus.PASS)


async def test_instance_51_fails() -> None:
    message = sealed_by(base_message(), "relay.example", "ed", ARCStatus.NONE)
    renumbered = message.raw.replace(b"i=1;", b"i=51;").replace(b"i=1\r\n", b"i=51\r\n")
    renumbered = renumbered.replace(b"; i=1", b"; i=51")
    result = await verifier().verify(Message.from_bytes(renumbered))
    assert result.result is ARCStatus.FAIL
    assert "i=51 is outside 1..50" in result.reason
    assert result.reason_code is ARCReason.BROKEN_SETS


async def test_gap_and_duplicate_instances_fail() -> None:
    message, _ = await hop(base_message(), "list.example", "rsa")
    message, _ = await hop(message, "fwd.example", "sel1")
    top = message.get("ARC-Seal")
    assert top is not None
    gap = message.raw.replace(top.raw, top.raw.replace(b"i=2", b"i=3"))
    result = await verifier().verify(Message.from_bytes(gap))
    assert result.result is ARCStatus.FAIL
    assert result.reason == "ARC set i=2 has no ARC-Seal"
    assert result.reason_code is ARCReason.BROKEN_SETS
    dup = message.prepend(top.raw)
    result = await verifier().verify(dup)
    assert result.reason == "more than one ARC-Seal with i=2"
    assert result.reason_code is ARCReason.BROKEN_SETS


async def test_no_arc_is_none() -> None:
    result = await verifier().verify(base_message())
    assert (result.result, result.instances, result.oldest_pass) == (ARCStatus.NONE, 0, None)
    assert result.resinfo().format() == "arc=none"
    result = await verifier().verify(b"\r\n")
    assert result.result is ARCStatus.NONE


async def test_unreadable_message_fails_without_raising() -> None:
    result = await verifier().verify(b" continuation first\r\n\r\n")
    assert result.result is ARCStatus.FAIL
    assert result.reason.startswith("unreadable message")
    assert result.reason_code is ARCReason.UNREADABLE_MESSAGE


async def test_key_problems_fail_with_reason() -> None:
    message = sealed_by(base_message(), "list.example", "rsa", "none")
    static = resolver()
    static.fail("rsa._domainkey.list.example", "TXT", Failure.SERVFAIL)
    result = await verifier(static).verify(message)
    assert result.result is ARCStatus.FAIL
    assert "temporary failure" in result.reason
    assert result.reason_code is ARCReason.AMS_INVALID
    static = StaticResolver()
    static.add("rsa._domainkey.list.example", "TXT", "v=DKIM1; k=rsa; p=")
    result = await verifier(static).verify(message)
    assert result.reason.endswith("key revoked (empty p=)")
    wrong_type = StaticResolver()
    wrong_type.add("rsa._domainkey.list.example", "TXT", records()["ed._domainkey.list.example"])
    result = await verifier(wrong_type).verify(message)
    assert "key type ed25519 does not match a=rsa-sha256" in result.reason


async def test_weak_rsa_key_fails() -> None:
    static = StaticResolver()
    static.add("sel1._domainkey.fwd.example", "TXT", records()["sel1._domainkey.fwd.example"])
    message = sealed_by(base_message(), "fwd.example", "sel1", "none")
    strict = ARCVerifier(static, min_rsa_bits=2048)
    result = await strict.verify(message)
    assert result.result is ARCStatus.FAIL
    assert "RSA key of 1024 bits is under 2048" in result.reason


class _SlowResolver:
    """Answers from a StaticResolver after a pause, counting lookups in flight."""

    def __init__(self, static: StaticResolver) -> None:
        self.static = static
        self.in_flight = 0
        self.peak = 0

    async def resolve(self, name: str, rdtype: RdType) -> Answer:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            return await self.static.resolve(name, rdtype)
        finally:
            self.in_flight -= 1


async def test_key_lookups_run_concurrently_once_per_key() -> None:
    message = base_message()
    for domain, selector in HOPS:
        message, _ = await hop(message, domain, selector)
    static = resolver()
    slow = _SlowResolver(static)
    result = await ARCVerifier(slow, clock=lambda: NOW).verify(message)
    assert result.result is ARCStatus.PASS
    assert slow.peak == 3
    assert len(static.queries) == 3  # AS and AMS of each set share their key


async def test_key_source_is_used() -> None:
    message = sealed_by(base_message(), "list.example", "rsa", "none")
    asked: list[tuple[str, str]] = []
    table = records()

    async def source(selector: str, domain: str) -> KeyRecord | KeyFailure:
        asked.append((selector, domain))
        return parse_key_record(table[f"{selector}._domainkey.{domain}"])

    result = await ARCVerifier(StaticResolver(), key_source=source).verify(message)
    assert result.result is ARCStatus.PASS
    assert asked == [("rsa", "list.example")]


def _hand_made_chain(x: int) -> Message:
    """One ARC set built by hand with the DKIM primitives (an AMS with x=, which our sealer
    never writes, and b= folded the DKIM signer's way)."""
    key = rsa_key(2048)
    message = base_message()
    with_aar = message.prepend(b"ARC-Authentication-Results: i=1; mx.list.example; spf=pass\r\n")
    bh = base64.b64encode(BodyHasher(message.body).digest(True)).decode()
    template = (
        f" a=rsa-sha256; c=relaxed/relaxed; d=list.example; s=rsa; i=1; t={NOW}; x={x};"
        f" h=from:subject:arc-authentication-results; bh={bh}; b="
    )
    ams = sign_header(with_aar, template.encode(), key, name=b"ARC-Message-Signature")
    with_ams = with_aar.prepend(ams)
    seal_template = f"ARC-Seal: a=rsa-sha256; cv=none; d=list.example; s=rsa; i=1; t={NOW}; b="
    template_field = Message.from_bytes(seal_template.encode() + b"\r\n").fields[0]
    aar_field, ams_field = (
        with_ams.get("ARC-Authentication-Results"),
        with_ams.get("ARC-Message-Signature"),
    )
    assert aar_field is not None
    assert ams_field is not None
    data = seal_input([ARCSetFields(1, aar_field, ams_field, template_field)])
    b = base64.b64encode(sign_data(key, Algorithm.RSA_SHA256, data)).decode()
    return with_ams.prepend((seal_template + b + "\r\n").encode())


async def test_hand_made_chain_and_expired_ams() -> None:
    message = _hand_made_chain(NOW + 3600)
    result = await verifier().verify(message)
    assert result.result is ARCStatus.PASS, result.reason
    later = ARCVerifier(resolver(), clock=lambda: NOW + 7200)
    result = await later.verify(message)
    assert result.result is ARCStatus.FAIL
    assert result.reason == (
        f"ARC-Message-Signature i=1 did not verify: signature expired (x={NOW + 3600})"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chain_validation": "pass"}, "no ARC set, so cv must be none"),
        ({"chain_validation": "maybe"}, "is not none/pass/fail"),
        ({"domain": "bad domain"}, "invalid domain"),
        ({"algorithm": "rsa-sha1"}, "must not be used for signing"),
        ({"algorithm": "ed25519-sha256"}, "needs a ed25519 key"),
        ({"algorithm": "md5"}, "unknown algorithm"),
        ({"headers": ["from", "arc-seal"]}, "must not sign ARC-Seal"),
        ({"headers": ["from", "to;x"]}, "invalid header field name"),
        ({"authserv_id": "two words"}, "invalid authserv-id"),
    ],
)
def test_seal_refuses_inconsistent_requests(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "domain": "list.example",
        "selector": "rsa",
        "private_key": rsa_key(2048),
        "authserv_id": "mx.list.example",
        "auth_results": "spf=pass",
        "chain_validation": "none",
        "timestamp": NOW,
    }
    args.update(kwargs)
    with pytest.raises(SealingError, match=match):
        seal(base_message(), **args)  # type: ignore[arg-type]


async def test_seal_refuses_none_on_an_existing_chain() -> None:
    message = sealed_by(base_message(), "list.example", "rsa", "none")
    with pytest.raises(SealingError, match="cv must be pass or fail"):
        sealed_by(message, "fwd.example", "sel1", "none")
    with pytest.raises(SealingError, match="cannot seal"):
        seal(
            b" bad\r\n",
            domain="list.example",
            selector="rsa",
            private_key=rsa_key(2048),
            authserv_id="mx.list.example",
            auth_results="",
            chain_validation="none",
        )


def _dkimpy_dns(table: dict[str, str]):  # type: ignore[no-untyped-def]
    encoded = {name.encode(): text.encode() for name, text in table.items()}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return encoded.get(name.rstrip(b"."))

    return dnsfunc


async def test_dkimpy_validates_our_chains() -> None:
    message, _ = await hop(base_message(), "list.example", "rsa")
    message, _ = await hop(message, "fwd.example", "sel1", change=add_footer)
    cv, _, comment = dkim.arc_verify(message.raw, dnsfunc=_dkimpy_dns(records()))
    assert cv == b"pass", comment
    cv, _, _ = dkim.arc_verify(add_footer(message).raw, dnsfunc=_dkimpy_dns(records()))
    assert cv == b"fail"
    assert header_block([("A", "b")]) == b"A: b\r\n"
