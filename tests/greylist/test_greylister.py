"""Greylisting decisions, run against every store (memory, SQLite, Redis)."""

from __future__ import annotations

import ipaddress

import pytest

from mailwarden.greylist import (
    AllowEntry,
    GreylistAction,
    GreylistConfig,
    Greylister,
    GreylistStore,
    TripletKey,
)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def greylister(store: GreylistStore, **config: object) -> tuple[Greylister, Clock]:
    clock = Clock()
    return Greylister(store, clock=clock, config=GreylistConfig(**config)), clock  # type: ignore[arg-type]


async def test_first_sight_defers_then_retry_in_window_passes(store: GreylistStore) -> None:
    g, clock = greylister(store)
    first = await g.check("192.0.2.10", "Alice@Example.COM", "bob@example.net")
    assert first.action is GreylistAction.DEFER
    assert first.retry_after == 300
    assert first.smtp_code == 451
    assert first.enhanced_code == "4.7.1"
    assert first.reply == "451 4.7.1 Greylisted, please try again in 300 seconds"
    assert first.key == TripletKey("net:192.0.2.0/24", "alice@example.com", "bob@example.net")
    assert first.reason == "first attempt of this triplet"

    clock.now += 120  # too early: still deferred, with the remaining delay
    early = await g.check("192.0.2.10", "alice@example.com", "bob@example.net")
    assert early.action is GreylistAction.DEFER
    assert early.retry_after == 180
    assert "too early" in early.reason
    assert "180 seconds" in (early.reply or "")

    clock.now += 200  # 320 s after the first attempt
    ok = await g.check("192.0.2.77", "alice@example.com", "bob@example.net")  # same /24
    assert ok.action is GreylistAction.PASS
    assert ok.reply is None
    assert "retried after 320 s" in ok.reason

    clock.now += 10 * 86_400  # passed keys are remembered
    again = await g.check("192.0.2.10", "alice@example.com", "bob@example.net")
    assert again.action is GreylistAction.PASS
    assert again.reason.startswith("known triplet")


async def test_retry_after_the_window_starts_over(store: GreylistStore) -> None:
    g, clock = greylister(store)
    await g.check("192.0.2.10", "a@example.com", "b@example.net")
    clock.now += 86_400 + 1
    late = await g.check("192.0.2.10", "a@example.com", "b@example.net")
    assert late.action is GreylistAction.DEFER
    assert late.reason == "first attempt of this triplet"


async def test_passed_keys_expire_after_pass_ttl(store: GreylistStore) -> None:
    g, clock = greylister(store, auto_allow_after=0)
    await g.check("192.0.2.10", "a@example.com", "b@example.net")
    clock.now += 301
    assert (await g.check("192.0.2.10", "a@example.com", "b@example.net")).action == "pass"
    clock.now += 35 * 86_400  # used again within 36 days: kept
    assert (await g.check("192.0.2.10", "a@example.com", "b@example.net")).action == "pass"
    clock.now += 37 * 86_400  # unused for longer than 36 days: forgotten
    assert (await g.check("192.0.2.10", "a@example.com", "b@example.net")).action == "defer"


async def test_each_triplet_part_matters(store: GreylistStore) -> None:
    g, clock = greylister(store)
    await g.check("192.0.2.10", "a@example.com", "b@example.net")
    clock.now += 400
    other_net = await g.check("198.51.100.1", "a@example.com", "b@example.net")
    other_sender = await g.check("192.0.2.10", "z@example.com", "b@example.net")
    other_rcpt = await g.check("192.0.2.10", "a@example.com", "c@example.net")
    assert {d.action for d in (other_net, other_sender, other_rcpt)} == {GreylistAction.DEFER}


async def test_sender_normalisation_joins_tagged_addresses(store: GreylistStore) -> None:
    g, clock = greylister(store)
    await g.check("192.0.2.10", "prvs=1234abcd=bounce-77@Lists.Example.org", "b@example.net")
    clock.now += 301
    retry = await g.check(
        "192.0.2.10", "<prvs=9999ffff=bounce-78@lists.example.org>", "b@example.net"
    )
    assert retry.action is GreylistAction.PASS
    assert retry.key is not None
    assert retry.key.sender == "bounce-#@lists.example.org"


async def test_ipv6_clients_are_keyed_by_their_64(store: GreylistStore) -> None:
    g, clock = greylister(store)
    first = await g.check("2001:db8:1:2::10", "a@example.com", "b@example.net")
    assert first.key is not None
    assert first.key.origin == "net:2001:db8:1:2::/64"
    clock.now += 301
    assert (await g.check("2001:db8:1:2:ffff::1", "a@example.com", "b@example.net")).action == (
        GreylistAction.PASS
    )
    assert (await g.check("2001:db8:1:3::1", "a@example.com", "b@example.net")).action == (
        GreylistAction.DEFER
    )


async def test_spf_pool_covers_retries_from_other_addresses(store: GreylistStore) -> None:
    g, clock = greylister(store)
    first = await g.check(
        "192.0.2.10", "a@bigmail.example", "b@example.net", spf_pass_domain="BigMail.example"
    )
    assert first.action is GreylistAction.DEFER
    assert first.key is not None
    assert first.key.origin == "spf:bigmail.example"
    clock.now += 600
    # The provider retries from an unrelated IPv6 address its SPF record authorises.
    retry = await g.check(
        "2001:db8:99::25", "a@bigmail.example", "b@example.net", spf_pass_domain="bigmail.example"
    )
    assert retry.action is GreylistAction.PASS
    # Without the SPF pass, the same retry is a new triplet.
    g2, _ = greylister(store, spf_pool=False)
    g2.clock = g.clock
    plain = await g2.check(
        "2001:db8:99::25", "a@bigmail.example", "b@example.net", spf_pass_domain="bigmail.example"
    )
    assert plain.action is GreylistAction.DEFER


async def test_never_greylisted(store: GreylistStore) -> None:
    g, _ = greylister(
        store,
        exempt_networks=(ipaddress.ip_network("198.51.100.0/24"),),
        exempt_domains=("partner.example",),
        exempt_recipients=("postmaster@example.net", "abuse.example"),
    )
    cases = [
        ({"authenticated": True}, "192.0.2.1", "a@x.example", "b@example.net", "authenticated"),
        ({"dnswl_hit": True}, "192.0.2.1", "a@x.example", "b@example.net", "allow list"),
        ({}, "198.51.100.9", "a@x.example", "b@example.net", "exempt network"),
        ({}, "192.0.2.1", "a@mx.partner.example", "b@example.net", "partner.example"),
        ({}, "192.0.2.1", "a@x.example", "PostMaster@example.net", "recipient"),
        ({}, "192.0.2.1", "a@x.example", "anyone@abuse.example", "recipient"),
    ]
    for flags, ip, sender, rcpt, why in cases:
        decision = await g.check(ip, sender, rcpt, **flags)  # type: ignore[arg-type]
        assert decision.action is GreylistAction.PASS, (ip, sender, rcpt)
        assert decision.exempt
        assert why in decision.reason
    assert await store.entries(g.clock()) == []  # nothing was recorded for them


async def test_network_passing_n_times_is_auto_allowed(store: GreylistStore) -> None:
    g, clock = greylister(store, auto_allow_after=3)
    for i in range(3):
        await g.check("192.0.2.10", f"user{i}x@example.com", f"r{i}@example.net")
    clock.now += 301
    for i in range(3):
        decision = await g.check("192.0.2.10", f"user{i}x@example.com", f"r{i}@example.net")
        assert decision.action is GreylistAction.PASS
    fresh = await g.check("192.0.2.200", "new@other.example", "someone@example.net")
    assert fresh.action is GreylistAction.PASS
    assert "auto-allowed" in fresh.reason
    elsewhere = await g.check("203.0.113.1", "new@other.example", "someone@example.net")
    assert elsewhere.action is GreylistAction.DEFER


async def test_manual_allow_entries(store: GreylistStore) -> None:
    g, clock = greylister(store)
    now = clock()
    await store.allow(AllowEntry("net:203.0.113.0/28", now, None, "partner relay"))
    await store.allow(AllowEntry("domain:trusted.example", now, now + 60))
    await store.allow(AllowEntry("sender:news@letters.example", now))
    by_net = await g.check("203.0.113.5", "x@y.example", "b@example.net")
    assert by_net.action is GreylistAction.PASS
    assert by_net.reason == "allowed by net:203.0.113.0/28 (partner relay)"
    outside = await g.check("203.0.113.17", "x@y.example", "b@example.net")
    assert outside.action is GreylistAction.DEFER
    sub = await g.check("192.0.2.1", "a@mail.trusted.example", "b@example.net")
    assert sub.reason == "allowed by domain:trusted.example"
    sender = await g.check("192.0.2.1", "NEWS@letters.example", "b@example.net")
    assert sender.action is GreylistAction.PASS
    clock.now += 61  # the domain allow expired
    assert (await g.check("192.0.2.1", "a@mail.trusted.example", "b@example.net")).action == (
        GreylistAction.DEFER
    )


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="retry_window"):
        GreylistConfig(min_delay=600, retry_window=300)
    with pytest.raises(ValueError, match="prefixes"):
        GreylistConfig(ipv4_prefix=33)
    with pytest.raises(ValueError, match="negative"):
        GreylistConfig(min_delay=-1)
