"""The SPFChecker front: identities (RFC 7208 §2.3, §2.4), the client address, A-labels,
the record cache."""

from __future__ import annotations

import ipaddress

from tests.spf.helpers import checker_for

from mailwarden.spf import Identity, SPFStatus


async def test_helo_identity_and_null_sender() -> None:
    zone: dict[str, dict[str, object]] = {
        "mail.example.com": {"TXT": "v=spf1 a -all", "A": "192.0.2.10"},
    }
    checker = checker_for(zone)
    helo = await checker.check_helo("192.0.2.10", "mail.example.com")
    assert (helo.identity, helo.result, helo.sender) == (
        Identity.HELO,
        SPFStatus.PASS,
        "postmaster@mail.example.com",
    )
    bounce = await checker.check_mailfrom("192.0.2.11", "", "mail.example.com")
    assert (bounce.identity, bounce.result) == (Identity.MAILFROM, SPFStatus.FAIL)
    assert bounce.sender == "postmaster@mail.example.com"
    literal = await checker.check_helo("192.0.2.10", "[192.0.2.10]")
    assert literal.result is SPFStatus.NONE


async def test_ipv4_mapped_client_is_treated_as_ipv4() -> None:
    zone: dict[str, dict[str, object]] = {"example.com": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"}}
    result = await checker_for(zone).check_mailfrom("::ffff:192.0.2.5", "a@example.com", "h")
    assert result.result is SPFStatus.PASS
    assert result.ip == ipaddress.ip_address("192.0.2.5")


async def test_unicode_sender_domain_is_checked_in_a_labels() -> None:
    zone: dict[str, dict[str, object]] = {
        "xn--bcher-kva.example": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
    }
    result = await checker_for(zone).check_mailfrom("192.0.2.5", "a@bücher.example", "h")
    assert result.result is SPFStatus.PASS
    assert result.domain == "xn--bcher-kva.example"


async def test_parsed_records_are_cached_and_lookups_counted() -> None:
    zone: dict[str, dict[str, object]] = {
        "example.com": {"TXT": "v=spf1 include:_spf.example.com -all"},
        "_spf.example.com": {"TXT": "v=spf1 ip4:192.0.2.0/24 -all"},
    }
    checker = checker_for(zone)
    first = await checker.check_mailfrom("192.0.2.5", "a@example.com", "h")
    second = await checker.check_mailfrom("192.0.2.6", "b@example.com", "h")
    assert first.dns_queries == second.dns_queries == 2
    assert len(checker._records) == 2


async def test_a_fresh_checker_reuses_the_parse_of_a_valid_record() -> None:
    zone: dict[str, dict[str, object]] = {
        "shared.example": {"TXT": "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 -all"},
        "broken.example": {"TXT": "v=spf1 ip4:192.0.2.0/99 -all"},
    }
    first, second = checker_for(zone), checker_for(zone)
    await first.check_mailfrom("192.0.2.5", "a@shared.example", "h")
    await second.check_mailfrom("192.0.2.5", "a@shared.example", "h")
    assert next(iter(second._records.values())) is next(iter(first._records.values()))
    for checker in (first, second):  # an invalid record: permerror for every checker
        result = await checker.check_mailfrom("192.0.2.5", "a@broken.example", "h")
        assert result.result is SPFStatus.PERMERROR
