"""Building our Authentication-Results field, and removing forged ones (RFC 8601 §5)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailwarden.authres import (
    AuthResultsBuilder,
    ResInfo,
    authserv_id_of,
    parse_authentication_results,
    parse_field,
    remove_forged,
)
from mailwarden.dmarc import (
    Discovery,
    DMARCPolicy,
    DMARCReason,
    DMARCResult,
    DMARCStatus,
    PolicyTag,
    parse_record,
)
from mailwarden.spf import Identity, SPFReason, SPFResult, SPFStatus

IP = ipaddress.ip_address("192.0.2.1")


def spf_result(result: SPFStatus, identity: Identity, domain: str, sender: str) -> SPFResult:
    return SPFResult(
        result, identity, domain, sender, IP, "mail.example.net", "because", SPFReason.MATCHED
    )


@dataclass(frozen=True)
class FakeDKIM:
    result: str
    reason: str
    domain: str
    selector: str
    algorithm: str
    header_b: str
    identity: str


def test_full_header_round_trips() -> None:
    dmarc = DMARCResult(
        DMARCStatus.PASS,
        "aligned",
        DMARCReason.ALIGNED,
        "example.com",
        Discovery.TREE_WALK,
        record=parse_record("v=DMARC1; p=reject"),
        requested_policy=DMARCPolicy.REJECT,
        policy_tag=PolicyTag.P,
        policy=DMARCPolicy.REJECT,
    )
    builder = (
        AuthResultsBuilder("mx.example.net")
        .spf(spf_result(SPFStatus.PASS, Identity.MAILFROM, "example.com", "alice@example.com"))
        .spf(spf_result(SPFStatus.NONE, Identity.HELO, "mail.example.net", "postmaster@x"))
        .dkim_result(
            FakeDKIM("pass", "", "example.com", "s1", "rsa-sha256", "Qgi/FoC0", "@example.com")
        )
        .dkim("fail", domain="example.org", reason="body hash mismatch")
        .dmarc(dmarc)
        .arc("pass", remote_ip="2001:db8::1", oldest_pass=0)
        .iprev("pass", ip="2001:db8::1", hostname="mail.example.net")
        .dnswl("pass", zone="list.dnswl.org", ip="127.0.10.1", txt="fwd.dnswl.org")
    )
    value = builder.build()
    text = builder.format_field()
    assert all(len(line) <= 78 for line in text.split("\r\n"))
    assert parse_field(text, strict=True) == value
    assert builder.format_value() == value.format_value()
    results = {(r.method, r.result): r for r in value.results}
    assert results["spf", "pass"].get("smtp", "mailfrom") == "alice@example.com"
    assert results["spf", "none"].get("smtp", "helo") == "mail.example.net"
    dkim = results["dkim", "pass"]
    assert [(p.name, p.value) for p in dkim.properties] == [
        ("d", "example.com"),
        ("i", "@example.com"),
        ("s", "s1"),
        ("a", "rsa-sha256"),
        ("b", "Qgi/FoC0"),
    ]
    assert results["dkim", "fail"].reason == "body hash mismatch"
    assert results["dmarc", "pass"].get("header", "from") == "example.com"
    assert results["dmarc", "pass"].get("policy", "dmarc") == "reject"
    assert results["dmarc", "pass"].comments == ("p=reject dis=none",)
    assert results["arc", "pass"].get("smtp", "remote-ip") == "2001:db8::1"
    assert results["arc", "pass"].get("header", "oldest-pass") == "0"
    assert results["iprev", "pass"].properties[0].comments == ("mail.example.net",)
    assert results["dnswl", "pass"].get("dns", "zone") == "list.dnswl.org"
    # values the grammar does not allow bare are quoted
    assert 'policy.iprev="2001:db8::1"' in text
    assert 'header.b="Qgi/FoC0"' in text


def test_dmarc_errors_carry_their_reason() -> None:
    dmarc = DMARCResult(
        DMARCStatus.TEMPERROR,
        "temporary DNS failure",
        DMARCReason.DNS_ERROR,
        "example.com",
        Discovery.PSL,
    )
    value = AuthResultsBuilder("mx").dmarc(dmarc).build()
    assert value.results == (
        ResInfo(
            "dmarc",
            "temperror",
            reason="temporary DNS failure",
            properties=value.results[0].properties,
        ),
    )
    assert value.results[0].get("policy", "dmarc") is None


def test_no_results_is_the_none_form() -> None:
    assert (
        AuthResultsBuilder("mx.example.net", version=1).format_value() == "mx.example.net 1; none"
    )


def test_remove_forged() -> None:
    headers = [
        ("Received", "from x"),
        ("Authentication-Results", " mx.example.net; spf=pass smtp.mailfrom=evil@x"),
        ("authentication-results", ' "MX.Example.NET" ; dkim=pass'),
        ("Authentication-Results", " (c) mx.example.net 1; none"),
        ("Authentication-Results", " mx.example.net; broken ((("),
        ("Authentication-Results", " lists.example.org; dkim=pass"),
        ("ARC-Authentication-Results", " i=1; mx.example.net; arc=none"),
        ("ARC-Authentication-Results", " i=1; lists.example.org; arc=none"),
        ("Authentication-Results-Original", " mx.example.net; spf=pass"),
        ("Subject", "mx.example.net; spf=pass"),
    ]
    kept = remove_forged(headers, "mx.example.net")
    assert kept == [
        ("Received", "from x"),
        ("Authentication-Results", " lists.example.org; dkim=pass"),
        ("ARC-Authentication-Results", " i=1; lists.example.org; arc=none"),
        ("Authentication-Results-Original", " mx.example.net; spf=pass"),
        ("Subject", "mx.example.net; spf=pass"),
    ]
    assert remove_forged(headers, ["lists.example.org", "nothing"])[1:3] == headers[1:3]


def test_authserv_id_of() -> None:
    assert authserv_id_of(" (comment) example.com; none") == "example.com"
    assert authserv_id_of('"quoted id"; none') == "quoted id"
    assert authserv_id_of("") is None


def test_parsed_results_can_be_merged() -> None:
    earlier = parse_authentication_results("example.com; spf=pass smtp.mailfrom=gmail.com")
    merged = AuthResultsBuilder("example.com").extend(earlier.results).dkim("pass").build()
    assert [r.method for r in merged.results] == ["spf", "dkim"]
