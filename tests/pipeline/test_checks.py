"""The full verdict: every check on one message, DMARC from SPF and DKIM, then the policy."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from mailwarden.arc import header_block, seal
from mailwarden.dkim import sign
from mailwarden.dkim.keygen import key_record
from mailwarden.dmarc import Discovery
from mailwarden.dns import RdType, Resolver, StaticResolver
from mailwarden.pipeline import Pipeline, build
from mailwarden.policy import Action
from mailwarden.settings import DMARCSettings, DNSListSettings, GatewaySettings, Settings

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
CLIENT = "192.0.2.10"  # mail.a.example: SPF-authorised, forward-confirmed
SPAMMER = "203.0.113.66"

MESSAGE = (
    b"From: Alice <alice@a.example>\r\n"
    b"To: bob@b.example\r\n"
    b"Subject: lunch\r\n"
    b"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
    b"Message-ID: <1@a.example>\r\n"
    b"\r\n"
    b"See you at noon.\r\n"
)
SPOOF = MESSAGE.replace(b"alice@a.example", b"ceo@bank.example")


def zone() -> dict[str, dict[str, Any]]:
    return {
        "a.example": {"TXT": "v=spf1 ip4:192.0.2.0/28 -all", "MX": "10 mail.a.example"},
        "mail.a.example": {"A": CLIENT},
        "10.2.0.192.in-addr.arpa": {"PTR": "mail.a.example"},
        "sel._domainkey.a.example": {"TXT": key_record(KEY)},
        "_dmarc.a.example": {"TXT": "v=DMARC1; p=reject; rua=mailto:dmarc@a.example"},
        "bank.example": {"TXT": "v=spf1 ip4:198.51.100.0/24 -all"},
        "_dmarc.bank.example": {"TXT": "v=DMARC1; p=reject"},
        "quiet.example": {"TXT": "v=spf1 ip4:203.0.113.0/24 -all"},
        "_dmarc.quiet.example": {"TXT": "v=DMARC1; p=quarantine"},
        # Spamhaus-style listing of the spammer (test zone, not the real list)
        "66.113.0.203.zen.spamhaus.org": {"A": "127.0.0.4", "TXT": "exploited host"},
    }


def signed(message: bytes = MESSAGE) -> bytes:
    header = sign(message, "a.example", "sel", KEY, timestamp=int(time.time()))
    return header + message


def authenticator(
    resolver: Resolver,
    *,
    discovery: Discovery = Discovery.TREE_WALK,
    trusted_sealers: tuple[str, ...] = (),
) -> Pipeline:
    settings = Settings(
        gateway=GatewaySettings(hostname="mx.b.example"),
        dnsbl=DNSListSettings(use=("zen",)),
        dmarc=DMARCSettings(discovery=discovery, trusted_sealers=trusted_sealers),
    )
    return build(settings, resolver)


async def test_legitimate_signed_mail_is_accepted() -> None:
    checker = authenticator(StaticResolver(zone()))
    verdict = await checker.check(
        signed(), ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
    )
    assert verdict.spf.result.value == "pass"
    assert [d.result.value for d in verdict.dkim] == ["pass"]
    assert verdict.dmarc.result.value == "pass"
    assert verdict.iprev is not None
    assert verdict.iprev.result.value == "pass"
    assert verdict.policy.action is Action.ACCEPT
    results = verdict.authentication_results
    assert results.authserv_id == "mx.b.example"
    header = results.format_value()  # unfolded: front ends fold it
    assert header.startswith("mx.b.example;")
    for clause in ("iprev=pass", "spf=pass", "dkim=pass", "dmarc=pass", "header.d=a.example"):
        assert clause in header
    assert "\r" not in header
    assert "\n" not in header


async def test_spoofed_from_under_p_reject_is_rejected() -> None:
    checker = authenticator(StaticResolver(zone()))
    verdict = await checker.check(
        SPOOF, ip="192.0.2.11", helo="mail.a.example", mail_from="alice@a.example"
    )
    assert verdict.spf.result.value == "pass"  # the envelope is a.example's
    assert verdict.dmarc.result.value == "fail"  # but nothing aligns with bank.example
    assert verdict.dmarc.disposition.value == "reject"
    assert verdict.policy.action is Action.REJECT
    assert verdict.policy.reply is not None
    assert verdict.policy.reply.code == 550
    assert "DMARC_POLICY_REJECT" in {s.name for s in verdict.policy.symbols}


async def test_quarantine_marks_as_spam() -> None:
    message = MESSAGE.replace(b"alice@a.example", b"news@quiet.example")
    checker = authenticator(StaticResolver(zone()))
    verdict = await checker.check(
        message, ip="198.51.100.1", helo="mail.a.example", mail_from="news@a.example"
    )
    assert verdict.dmarc.disposition.value == "quarantine"
    assert verdict.policy.spam


async def test_listed_client_is_rejected_by_the_hard_rule() -> None:
    checker = authenticator(StaticResolver(zone()))
    verdict = await checker.check(
        MESSAGE, ip=SPAMMER, helo="spammer.example", mail_from="x@quiet.example"
    )
    assert verdict.dnsbl is not None
    assert [r.list for r in verdict.dnsbl.listed] == ["zen"]
    assert verdict.policy.action is Action.REJECT
    assert verdict.policy.reply is not None
    assert verdict.policy.reply.code == 554


async def test_dmarc_dns_failure_is_a_temperror_never_a_pass() -> None:
    resolver = StaticResolver(zone())
    resolver.fail("_dmarc.bank.example", "TXT")
    verdict = await authenticator(resolver).check(
        SPOOF, ip="192.0.2.11", helo="mail.a.example", mail_from="alice@a.example"
    )
    assert verdict.dmarc.result.value == "temperror"
    assert verdict.policy.action is not Action.REJECT
    assert "DMARC_TEMPERROR" in {s.name for s in verdict.policy.symbols}
    assert "dmarc=temperror" in verdict.authentication_results.format_value()


async def test_several_from_fields_are_not_evaluated() -> None:
    message = b"From: a@a.example\r\nFrom: b@bank.example\r\nSubject: x\r\n\r\nbody\r\n"
    verdict = await authenticator(StaticResolver(zone())).check(
        message, ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
    )
    assert not verdict.dmarc.evaluated
    assert verdict.dmarc.result.value in ("none", "permerror")


async def test_unparsable_message_still_gets_a_verdict() -> None:
    verdict = await authenticator(StaticResolver(zone())).check(
        b"\x00" * 10, ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
    )
    assert verdict.policy.action in Action


async def test_independent_lookups_run_concurrently() -> None:
    """With every answer delayed, the verdict takes a few round trips, not one per lookup."""

    class Slow:
        def __init__(self, inner: StaticResolver) -> None:
            self.inner = inner

        async def resolve(self, name: str, rdtype: RdType) -> Any:
            await asyncio.sleep(0.05)
            return await self.inner.resolve(name, rdtype)

    static = StaticResolver(zone())
    checker = authenticator(Slow(static))
    started = time.perf_counter()
    await checker.check(signed(), ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example")
    elapsed = time.perf_counter() - started
    assert len(static.queries) >= 8
    assert elapsed < 0.05 * len(static.queries) / 2


async def _asked(message: bytes, zone_data: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    static = StaticResolver(zone_data)
    checker = authenticator(static)
    await checker.check(message, ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example")
    await checker.drain()
    return [(name, str(rdtype)) for name, rdtype in static.queries]


async def test_aligned_pass_asks_only_the_author_record() -> None:
    """An aligned pass with a record at the Author Domain: no Tree Walk above it and no
    existence query for np= (RFC 9989 §4.10: the walk is needed only to compare different
    domains or when the Author Domain has no record)."""
    asked = await _asked(signed(), zone())
    assert asked.count(("_dmarc.a.example", "TXT")) == 1
    assert ("_dmarc.example", "TXT") not in asked
    assert ("a.example", "A") not in asked
    assert ("a.example", "AAAA") not in asked


async def test_spoof_walks_the_tree_and_checks_existence_when_np_could_apply() -> None:
    """A failing message from a subdomain without its own record: the walk finds the
    Organizational Domain's record, and existence is asked since np= differs from sp=."""
    data = zone()
    data["_dmarc.bank.example"] = {"TXT": "v=DMARC1; p=reject; sp=quarantine; np=reject"}
    message = signed(MESSAGE.replace(b"alice@a.example", b"ceo@ghost.bank.example"))
    asked = await _asked(message, data)
    assert ("_dmarc.ghost.bank.example", "TXT") in asked
    assert ("_dmarc.bank.example", "TXT") in asked
    assert ("ghost.bank.example", "A") in asked


async def test_failing_message_without_np_difference_skips_existence() -> None:
    data = zone()
    message = signed(SPOOF)
    verdict = await authenticator(StaticResolver(data)).check(
        message, ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
    )
    assert verdict.dmarc.result.value == "fail"
    asked = await _asked(message, data)
    assert ("bank.example", "A") not in asked


@pytest.mark.parametrize("discovery", list(Discovery))
async def test_discovery_method_is_recorded(discovery: Discovery) -> None:
    resolver = StaticResolver(zone())
    checker = authenticator(resolver, discovery=discovery)
    verdict = await checker.check(
        signed(), ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
    )
    assert verdict.dmarc.discovery_method is discovery


LIST_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))


def forwarded_through_list(*, footer: bool = False) -> bytes:
    """Signed by a.example, received by list.example (dkim and dmarc pass there), given a
    footer by the list (with `footer`: DKIM and so DMARC then fail downstream), then sealed."""
    original = signed()
    if footer:
        original += b"--\r\nlist footer\r\n"
    sealed = seal(
        original,
        domain="list.example",
        selector="arc",
        private_key=LIST_KEY,
        authserv_id="list.example",
        auth_results="dkim=pass header.d=a.example; dmarc=pass header.from=a.example",
        chain_validation="none",
        timestamp=int(time.time()),
    )
    return header_block(sealed) + original


def list_zone() -> dict[str, dict[str, Any]]:
    data = zone()
    data["arc._domainkey.list.example"] = {"TXT": key_record(LIST_KEY)}
    data["list.example"] = {"TXT": "v=spf1 ip4:198.51.100.0/24 -all"}
    return data


async def test_arc_is_verified_and_reported() -> None:
    verdict = await authenticator(StaticResolver(list_zone())).check(
        forwarded_through_list(), ip="198.51.100.5", helo="list.example", mail_from="l@list.example"
    )
    assert verdict.arc is not None
    assert verdict.arc.result.value == "pass"
    assert "arc=pass" in verdict.authentication_results.format_value()


async def test_trusted_sealer_overrides_a_dmarc_fail() -> None:
    message = forwarded_through_list(footer=True)
    resolver = StaticResolver(list_zone())
    untrusted = await authenticator(resolver).check(
        message, ip="198.51.100.5", helo="list.example", mail_from="l@list.example"
    )
    assert untrusted.dmarc.result.value == "fail"
    assert untrusted.policy.action is Action.REJECT
    trusted = await authenticator(resolver, trusted_sealers=("list.example",)).check(
        message, ip="198.51.100.5", helo="list.example", mail_from="l@list.example"
    )
    assert trusted.dmarc.result.value == "fail"  # the result stays; the disposition changes
    assert trusted.dmarc.override_reason is not None
    assert trusted.dmarc.override_reason.value == "trusted_forwarder"
    assert trusted.dmarc.disposition.value == "none"
    assert "ARC_TRUSTED_PASS" in {s.name for s in trusted.policy.symbols}
    assert trusted.policy.action is not Action.REJECT


@pytest.mark.parametrize("ticks", [0, 1, 2, 3])
async def test_a_session_closed_at_once_leaves_no_check_unawaited(ticks: int) -> None:
    """A client that connects and leaves at once: its connection and HELO checks are
    cancelled before (or just as) they start, and no check coroutine is left never awaited
    (pytest turns that RuntimeWarning into a failure)."""
    import gc

    from mailwarden.pipeline import SessionChecks

    settings = Settings(dnsbl=DNSListSettings(use=("zen",)))
    session = SessionChecks(build(settings, StaticResolver({})), "192.0.2.1")
    session.helo("mail.example.com")
    for _ in range(ticks):
        await asyncio.sleep(0)
    await session.close()
    gc.collect()


# -- deadlines: every stage has its own; out of time is never a pass ------------------------


def deadline_pipeline(resolver: Resolver, **seconds: float) -> Pipeline:
    from mailwarden.settings import Deadlines

    settings = Settings(
        gateway=GatewaySettings(hostname="mx.b.example"),
        dnsbl=DNSListSettings(use=("zen",)),
        deadlines=Deadlines(**seconds),
    )
    return build(settings, resolver)


async def test_slow_mail_from_spf_is_a_temperror_by_its_own_deadline() -> None:
    resolver = StaticResolver(zone())
    resolver.fail("a.example", "TXT", delay=5.0)  # the answer comes too late
    started = time.perf_counter()
    verdict = await deadline_pipeline(resolver, mail=0.2, helo=0.2, data=3.0).check(
        signed(), ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
    )
    assert time.perf_counter() - started < 2.0  # the mail deadline, not the data one
    assert verdict.spf.result.value == "temperror"
    assert "timed out after 0.2 s" in verdict.spf.reason
    assert verdict.dkim[0].result.value == "pass"  # the rest still counts
    assert verdict.dmarc.result.value == "pass"


async def test_slow_connection_checks_count_for_nothing() -> None:
    resolver = StaticResolver(zone())
    resolver.fail("10.2.0.192.in-addr.arpa", "PTR", delay=5.0)
    verdict = await deadline_pipeline(resolver, connect=0.2, data=3.0).check(
        signed(), ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
    )
    assert verdict.iprev is None
    assert "connect" in verdict.timed_out
    assert verdict.spf.result.value == "pass"


async def test_the_data_deadline_bounds_a_stage_with_a_longer_one() -> None:
    resolver = StaticResolver(zone())
    resolver.fail("sel._domainkey.a.example", "TXT", delay=5.0)
    started = time.perf_counter()
    verdict = await deadline_pipeline(resolver, data=0.3).check(
        signed(), ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
    )
    assert time.perf_counter() - started < 2.0
    assert [d.result.value for d in verdict.dkim] == ["temperror"]
    assert "dkim" in verdict.timed_out
    # DMARC needs no wait (its record was prefetched): it is decided from the aligned SPF
    # pass even though DKIM ran out of time (before stages started eagerly, it was cancelled
    # unstarted at the passed deadline: temperror)
    assert verdict.dmarc.result.value == "pass"
    assert verdict.policy.action is Action.ACCEPT


async def test_a_stage_finished_at_once_needs_no_task() -> None:
    """Warm caches: no stage of a verdict needs a task of its own (the network checks, off
    here, gather theirs)."""
    settings = Settings(gateway=GatewaySettings(hostname="mx.b.example"))
    pipeline = build(settings, StaticResolver(zone()), network_checks=False)
    message = signed()
    for _ in range(3):  # caches filled, SPF policies compiled
        await pipeline.check(message, ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example")
    await pipeline.drain()
    made: list[object] = []
    loop = asyncio.get_running_loop()
    loop.set_task_factory(lambda lp, coro: made.append(coro) or asyncio.Task(coro, loop=lp))
    try:
        verdict = await pipeline.check(
            message, ip=CLIENT, helo="mail.a.example", mail_from="alice@a.example"
        )
    finally:
        loop.set_task_factory(None)
    assert verdict.dmarc.result.value == "pass"
    assert verdict.dkim[0].result.value == "pass"
    assert made == []


@pytest.mark.parametrize(
    ("host", "ours"),
    [("203.0.113.25", ("203.0.113.25",)), ("mx.b.example", ()), ("0.0.0.0", ()), ("::1", ())],
)
def test_our_listening_address_is_ours(host: str, ours: tuple[str, ...]) -> None:
    """A HELO naming the address we listen on is forged: that address is known to the
    checks; a host name, a wildcard or loopback address is none."""
    for _ in range(2):  # read once per host, the same each time
        settings = Settings(gateway=GatewaySettings(hostname="mx.b.example", listen=(host, 25)))
        pipeline = build(settings, StaticResolver(zone()))
        assert tuple(str(a) for a in pipeline.our_addresses) == ours


# -- which questions a verdict asks (issue 14: each lookup only when the decision needs it) --
PROVIDER_ZONE: dict[str, dict[str, Any]] = {
    # the shape of benchmarks/verdict_bench.py's corpus: mx first, then a provider whose first
    # range holds the client, so its second include can never be evaluated (RFC 7208 §4.6.2)
    "d1.example": {"TXT": "v=spf1 mx include:_spf.prov.example -all", "MX": "10 mx.d1.example"},
    "mx.d1.example": {"A": "192.0.2.25"},
    "_spf.prov.example": {"TXT": "v=spf1 ip4:10.0.0.0/16 include:_spf2.prov.example ~all"},
    "_spf2.prov.example": {"TXT": "v=spf1 ip4:10.100.0.0/16 ?all"},
    "sel._domainkey.d1.example": {"TXT": key_record(KEY)},
    "_dmarc.d1.example": {"TXT": "v=DMARC1; p=reject"},
    "d2.example": {"TXT": "v=spf1 -all"},
    "_dmarc.d2.example": {"TXT": "v=DMARC1; p=reject"},
    "arc._domainkey.list.example": {"TXT": key_record(LIST_KEY)},
}
PROVIDER_CLIENT = "10.0.3.4"
D1_MESSAGE = MESSAGE.replace(b"alice@a.example", b"news@d1.example")
SPF_D1 = [
    ("d1.example", "TXT"),
    ("d1.example", "MX"),
    ("mx.d1.example", "A"),  # mx is evaluated before the include, and does not match
    ("_spf.prov.example", "TXT"),  # its ip4 range holds the client: _spf2 is never needed
]


def from_d1(message: bytes) -> bytes:
    return sign(message, "d1.example", "sel", KEY, timestamp=int(time.time())) + message


def sealed_by_list(message: bytes) -> bytes:
    sealed = seal(
        message,
        domain="list.example",
        selector="arc",
        private_key=LIST_KEY,
        authserv_id="list.example",
        auth_results="dkim=pass header.d=d1.example; dmarc=pass header.from=d1.example",
        chain_validation="none",
        timestamp=int(time.time()),
    )
    return header_block(sealed) + message


async def _questions(message: bytes, *, prefetch: bool = True) -> tuple[list[Any], Any]:
    """The questions (name, type) one message asks with an empty cache, the HELO name's
    aside (SPF for the HELO identity is counted apart), and the verdict as JSON."""
    static = StaticResolver(PROVIDER_ZONE)
    checker = build(
        Settings(gateway=GatewaySettings(hostname="mx.b.example")), static, network_checks=False
    )
    checker.spf.prefetch = prefetch
    verdict = await checker.check(
        message, ip=PROVIDER_CLIENT, helo="out.d1.example", mail_from="bounce@d1.example"
    )
    await checker.drain()
    asked = sorted(
        (name, str(rdtype)) for name, rdtype in static.queries if name != "out.d1.example"
    )
    return asked, verdict.to_dict()


@pytest.mark.parametrize(
    ("message", "expected", "dmarc"),
    [
        pytest.param(
            from_d1(D1_MESSAGE),
            [*SPF_D1, ("sel._domainkey.d1.example", "TXT"), ("_dmarc.d1.example", "TXT")],
            "pass",
            id="aligned-pass",
        ),
        pytest.param(
            # From d2.example, signed and sent by d1.example: RFC 9989 §4.10.2 needs the walk
            # to _dmarc.example to rule out a shared Organizational Domain (a record there
            # without psd=y would make both d1 and d2 belong to "example"); d1's own record
            # is not needed (it cannot share an Organizational Domain below "example"), nor
            # d2's existence (np= is not set: no other policy could apply)
            from_d1(D1_MESSAGE.replace(b"news@d1.example", b"ceo@d2.example")),
            [
                *SPF_D1,
                ("sel._domainkey.d1.example", "TXT"),
                ("_dmarc.d2.example", "TXT"),
                ("_dmarc.example", "TXT"),
            ],
            "fail",
            id="spoof",
        ),
        pytest.param(
            sealed_by_list(from_d1(D1_MESSAGE)),
            [
                *SPF_D1,
                ("sel._domainkey.d1.example", "TXT"),
                ("arc._domainkey.list.example", "TXT"),  # RFC 8617 §5.2: the AMS and AS keys
                ("_dmarc.d1.example", "TXT"),
            ],
            "pass",
            id="arc-forwarded",
        ),
    ],
)
async def test_each_question_is_asked_once_and_only_when_needed(
    message: bytes, expected: list[tuple[str, str]], dmarc: str
) -> None:
    asked, output = await _questions(message)
    assert asked == sorted(expected)
    assert output["spf"]["result"] == "pass"
    assert output["dmarc"]["result"] == dmarc


@pytest.mark.parametrize(
    "message",
    [
        from_d1(D1_MESSAGE),
        from_d1(D1_MESSAGE.replace(b"news@d1.example", b"ceo@d2.example")),
        sealed_by_list(from_d1(D1_MESSAGE)),
    ],
    ids=["aligned-pass", "spoof", "arc-forwarded"],
)
async def test_prefetching_asks_nothing_the_interpreter_alone_does_not(message: bytes) -> None:
    """The SPF prefetch only moves questions earlier: the same questions and the same full
    verdict as the interpreter asking one at a time."""
    with_prefetch = await _questions(message)
    without = await _questions(message, prefetch=False)
    assert with_prefetch == without
