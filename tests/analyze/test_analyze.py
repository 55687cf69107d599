"""mailwarden.analyze on messages with realistic Received chains (tests/analyze/data, made by
make_data.py): the hop table, the trust boundary, explanations, re-verification, changes."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from mailwarden.analyze import (
    MAX_CLOCK_SKEW,
    BoundaryMethod,
    analyze_message,
    find_boundary,
    parse_received_spf,
    read_hops,
)
from mailwarden.dns import Failure, RdType, StaticResolver
from mailwarden.dnsbl import parse_list
from mailwarden.message import read_message

DATA = Path(__file__).resolve().parent / "data"
NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC).timestamp()
TEST_LIST = parse_list({"name": "testbl", "zone": "bl.example.test"})


def resolver() -> StaticResolver:
    return StaticResolver.from_master_files([DATA / "zone.txt"])


async def analyze(name: str, dns: StaticResolver | None = None, **options: Any) -> dict[str, Any]:
    message = read_message((DATA / name).read_bytes())
    result = await analyze_message(
        message,
        dns if dns is not None else resolver(),
        dns_lists=[TEST_LIST],
        clock=lambda: NOW,
        **options,
    )
    return result.to_dict()


def header(data: dict[str, Any], kind: str, index: int = 0) -> dict[str, Any]:
    found = [h for h in data["headers"] if h["kind"] == kind]
    return found[index]


def change(data: dict[str, Any], method: str, subject: str | None = None) -> dict[str, Any]:
    return next(
        c
        for c in data["changes"]
        if c["method"] == method and (subject is None or c["subject"] == subject)
    )


async def test_postfix_chain_hops_field_by_field() -> None:
    data = await analyze("postfix_chain.eml")
    hops = data["hops"]
    assert [h["index"] for h in hops] == [1, 2, 3, 4]
    assert [h["position"] for h in hops] == [3, 2, 1, 0]
    first, boundary, filter_hop, store = hops
    assert first["from"] == {
        "name": "[2001:db8:1::10]",
        "helo": "laptop.example.com",
        "reverse_name": None,
        "ip": "2001:db8:1::10",
    }
    assert first["by"] == "mail.example.com"
    assert first["with"] == {
        "protocol": "esmtpsa",
        "tls": {"version": "TLS1.3", "cipher": "TLS_AES_256_GCM_SHA384"},
    }
    assert first["id"] == "1kAbCd-0001Xy-7Q"
    assert first["for"] == "bob@example.net"
    assert first["time"] == "2026-11-23T10:00:01+00:00"
    assert first["delay"] is None
    assert first["trusted"] is False
    assert boundary["from"] == {
        "name": "mail.example.com",
        "helo": "mail.example.com",
        "reverse_name": "mail.example.com",
        "ip": "192.0.2.10",
    }
    assert boundary["by"] == "mx.example.net"
    assert boundary["by_comment"] == "Postfix"
    assert boundary["with"]["tls"] == {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"}
    assert boundary["delay"] == 2.0
    assert boundary["trusted"] is True
    assert filter_hop["from"]["ip"] == "127.0.0.1"
    assert filter_hop["with"] == {"protocol": "ESMTP", "tls": None}
    assert (filter_hop["delay"], store["delay"]) == (1.0, 1.0)
    assert store["with"]["protocol"] == "LMTP"
    assert all(h["flags"] == [] and h["problems"] == [] and h["error"] is None for h in hops)


async def test_postfix_chain_boundary_from_the_authserv_id() -> None:
    data = await analyze("postfix_chain.eml")
    assert data["boundary"] == {
        "hop": 2,
        "by": "mx.example.net",
        "ip": "192.0.2.10",
        "helo": "mail.example.com",
        "reverse_name": "mail.example.com",
        "method": "authserv-id",
        "trusted_names": ["mx.example.net"],
        "reason": data["boundary"]["reason"],
    }
    assert "hop 2" in data["boundary"]["reason"]


async def test_postfix_chain_explanations() -> None:
    data = await analyze("postfix_chain.eml")
    ar = header(data, "authentication-results")
    assert ar["trusted"] is True
    assert ar["data"]["authserv_id"] == "mx.example.net"
    assert [r["method"] for r in ar["data"]["results"]] == ["spf", "dkim", "dkim", "dmarc", "iprev"]
    assert ar["data"]["results"][0]["properties"] == {"smtp.mailfrom": "alice@example.com"}
    assert any("spf=pass" in line and "alice@example.com" in line for line in ar["explanation"])
    spf = header(data, "received-spf")
    assert spf["data"]["result"] == "pass"
    assert spf["data"]["client-ip"] == "192.0.2.10"
    assert spf["data"]["envelope-from"] == "alice@example.com"
    assert spf["data"]["helo"] == "mail.example.com"
    new, old = header(data, "dkim-signature", 0), header(data, "dkim-signature", 1)
    assert new["data"]["selector"] == "sel2025"
    assert new["data"]["algorithm"] == "rsa-sha256"
    assert new["data"]["key_bits"] == 2048  # fetched now
    assert new["data"]["length"] is not None
    assert "from" in new["data"]["signed_headers"]
    assert any("l=" in line and "not protected" in line for line in new["explanation"])
    assert any(line.startswith("oversigns from") for line in new["explanation"])
    assert old["data"]["selector"] == "old2020"
    assert old["data"]["algorithm"] == "ed25519-sha256"
    assert old["data"]["key_bits"] is None  # the key is gone
    assert old["data"]["length"] is None


async def test_postfix_chain_reverification_and_rotated_key() -> None:
    data = await analyze("postfix_chain.eml")
    now = data["reverify"]
    assert (now["ip"], now["ip_source"], now["helo"], now["mail_from"]) == (
        "192.0.2.10",
        "boundary",
        "mail.example.com",
        "alice@example.com",
    )
    assert now["spf"]["result"] == "pass"
    assert [(d["selector"], d["result"]) for d in now["dkim"]] == [
        ("sel2025", "pass"),
        ("old2020", "permerror"),
    ]
    assert now["dmarc"]["result"] == "pass"
    assert now["arc"]["result"] == "none"
    relays = {r["ip"]: r for r in now["relays"]}
    assert relays["192.0.2.10"]["iprev"]["result"] == "pass"
    assert relays["192.0.2.10"]["iprev"]["name"] == "mail.example.com"
    assert relays["192.0.2.10"]["dnsbl"][0]["status"] == "not-listed"
    assert relays["2001:db8:1::10"]["iprev"]["result"] == "permerror"
    assert relays["127.0.0.1"]["iprev"] is None
    assert relays["10.0.0.5"]["note"].startswith("private")
    rotated = change(data, "dkim", "d=example.com s=old2020")
    assert (rotated["then"], rotated["now"], rotated["changed"]) == ("pass", "permerror", True)
    assert "rotated away" in rotated["note"]
    kept = change(data, "dkim", "d=example.com s=sel2025")
    assert (kept["then"], kept["now"], kept["changed"]) == ("pass", "pass", False)
    assert change(data, "spf")["changed"] is False
    assert change(data, "iprev")["then"] == "pass"
    assert data["summary"].endswith("1 change since delivery")


async def test_forged_hop_below_the_boundary() -> None:
    data = await analyze("forged_hop.eml")
    forged, outlook, boundary = data["hops"]
    assert data["boundary"]["hop"] == 3
    assert data["boundary"]["ip"] == "203.0.113.77"
    assert data["boundary"]["reverse_name"] == "mail-am6eur05on2101.outbound.example"
    assert "forged" in forged["flags"]
    assert forged["by"] == "mx.example.net"
    assert forged["trusted"] is False
    assert outlook["from"]["ip"] == "2603:10a6:10:1d::2"
    assert outlook["with"] == {
        "protocol": "Microsoft SMTP Server",
        "tls": {"version": "TLS1_2", "cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
    }
    assert outlook["delay"] == -5400.0
    assert "out-of-order" in outlook["flags"]
    assert boundary["delay"] == -60.0
    assert boundary["flags"] == ["clock-skew"]
    assert boundary["with"]["tls"] == {"version": None, "cipher": None}  # ESMTPS, not detailed
    outer = header(data, "authentication-results", 1)
    assert outer["trusted"] is False  # claims mx.example.net, but sits below the boundary
    assert any("below the trust boundary" in line for line in outer["explanation"])
    assert header(data, "authentication-results", 0)["trusted"] is True


async def test_forged_hop_listed_relay_and_recorded_results() -> None:
    data = await analyze("forged_hop.eml")
    now = data["reverify"]
    assert now["mail_from"] == "ceo@example.org"  # from our recorded smtp.mailfrom
    assert now["spf"]["result"] == "fail"
    assert now["dkim"] == []
    assert now["dmarc"]["result"] == "fail"
    relay = next(r for r in now["relays"] if r["ip"] == "203.0.113.77")
    assert relay["listed"] == ["testbl"]
    assert relay["dnsbl"][0]["codes"] == ["127.0.0.2"]
    assert "listed for spam" in relay["dnsbl"][0]["reason"]
    assert relay["iprev"]["result"] == "fail"
    # the forged Authentication-Results below the boundary (spf=pass) is not "then"
    assert change(data, "spf")["then"] == "fail"
    assert change(data, "dmarc")["then"] == "fail"
    assert "1 relay(s) listed" in data["summary"]


async def test_mailing_list_arc_chain() -> None:
    data = await analyze("list_arc.eml")
    first = data["hops"][0]
    assert first["from"]["ip"] == "2001:db8:1::25"
    assert first["by_comment"] == "8.17.1/8.17.1"
    assert first["with"]["tls"] == {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"}
    arc = header(data, "arc-set")
    assert arc["data"]["instance"] == 1
    assert arc["data"]["seal_domain"] == "example.org"
    assert arc["data"]["cv"] == "none"
    assert arc["data"]["authserv_id"] == "lists.example.org"
    assert any("dkim=pass" in line for line in arc["explanation"])
    now = data["reverify"]
    assert now["arc"] == {
        "result": "pass",
        "reason": now["arc"]["reason"],
        "instances": 1,
        "oldest_pass": 0,
    }
    assert now["dkim"][0]["result"] == "fail"  # the list changed the subject
    assert now["spf"]["result"] == "pass"  # team@lists.example.org from 198.51.100.25
    assert now["dmarc"]["result"] == "fail"
    assert change(data, "arc")["then"] == "pass"
    assert change(data, "arc")["now"] == "pass"


async def test_trusted_host_option_moves_the_boundary() -> None:
    # Trusting the sender's server too: the message entered at the submission hop.
    data = await analyze("postfix_chain.eml", trusted_hosts=["example.net", "mail.example.com"])
    assert data["boundary"]["method"] == "trusted-host"
    assert data["boundary"]["hop"] == 1
    assert data["boundary"]["ip"] == "2001:db8:1::10"
    assert data["boundary"]["helo"] == "laptop.example.com"
    assert data["reverify"]["spf"]["result"] == "pass"  # ip6:2001:db8:1::/48
    data = await analyze("postfix_chain.eml", trusted_hosts=["example.net"])
    assert data["boundary"]["hop"] == 2
    assert [h["trusted"] for h in data["hops"]] == [False, True, True, True]


async def test_ip_option_and_no_reverify() -> None:
    data = await analyze("postfix_chain.eml", ip="203.0.113.1", helo="x.example")
    assert data["reverify"]["ip_source"] == "option"
    assert data["reverify"]["spf"]["result"] == "fail"
    assert change(data, "spf")["changed"] is True
    message = read_message((DATA / "postfix_chain.eml").read_bytes())
    offline = (await analyze_message(message, None, clock=lambda: NOW)).to_dict()
    assert offline["reverify"] is None
    assert offline["changes"] == []
    assert len(offline["hops"]) == 4


async def test_dns_timeouts_are_temperrors_not_missing() -> None:
    dns = resolver()
    dns.fail("sel2025._domainkey.example.com", RdType.TXT)
    dns.fail("example.com", RdType.TXT)
    dns.fail("10.2.0.192.in-addr.arpa", RdType.PTR, Failure.SERVFAIL)
    data = await analyze("postfix_chain.eml", dns)
    now = data["reverify"]
    assert now["spf"]["result"] == "temperror"
    assert now["dkim"][0]["result"] == "temperror"
    relay = next(r for r in now["relays"] if r["ip"] == "192.0.2.10")
    assert relay["iprev"]["result"] == "temperror"
    assert "DNS trouble" in change(data, "dkim", "d=example.com s=sel2025")["note"]


def hop(client: str, octet: int, by: str, time: str) -> str:
    return (
        f"from {client}.example ({client}.example [192.0.2.{octet}]) by {by}.example;"
        f" Mon, 23 Nov 2026 {time} +0000"
    )


def message_with(received: list[str], extra: str = "") -> bytes:
    fields = "".join(f"Received: {r}\r\n" for r in received)
    return (extra + fields + "From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n").encode()


def test_read_hops_times_and_unreadable_fields() -> None:
    message = read_message(
        message_with(
            [
                hop("c", 3, "d", "14:00:00"),
                "garbage",
                hop("a", 1, "b", "10:00:00"),
            ]
        )
    )
    hops = read_hops(message, now=NOW)
    assert [h.index for h in hops] == [1, 2, 3]
    assert hops[1].hop is None
    assert "not a Received field" in hops[1].error
    assert hops[2].delay == 4 * 3600  # measured from the last hop with a time
    assert "in-the-future" in hops[2].flags  # NOW is 12:00
    assert MAX_CLOCK_SKEW < 4 * 3600


def test_boundary_without_anything_to_go_by_is_the_topmost_hop() -> None:
    message = read_message(
        message_with(
            [
                hop("a", 1, "b", "10:00:00"),
                hop("x", 9, "a", "09:59:00"),
            ]
        )
    )
    boundary, hops = find_boundary(read_hops(message))
    assert boundary.method is BoundaryMethod.TOPMOST
    assert boundary.hop == 2
    assert str(boundary.ip) == "192.0.2.1"
    assert "assumed" in boundary.reason
    assert [h.trusted for h in hops] == [False, True]


def test_boundary_with_unknown_authserv_id_falls_back_to_topmost() -> None:
    message = read_message(message_with([hop("a", 1, "b", "10:00:00")]))
    boundary, _ = find_boundary(read_hops(message), authserv_id="mx.elsewhere.example")
    assert boundary.method is BoundaryMethod.TOPMOST
    assert "no Received field was written by a trusted host" in boundary.reason


def test_boundary_parent_domain_of_the_authserv_id() -> None:
    message = read_message(
        message_with(
            [
                "from in.example.net (in.example.net [10.0.0.1]) by store.example.net;"
                " Mon, 23 Nov 2026 10:00:02 +0000",
                "from out.sender.example (out.sender.example [192.0.2.7]) by in.example.net;"
                " Mon, 23 Nov 2026 10:00:01 +0000",
            ]
        )
    )
    boundary, _ = find_boundary(read_hops(message), authserv_id="auth.example.net")
    assert boundary.method is BoundaryMethod.AUTHSERV_ID
    assert boundary.trusted_names == ("auth.example.net", "example.net")
    assert boundary.hop == 1
    assert boundary.helo == "out.sender.example"


def test_parse_received_spf() -> None:
    assert parse_received_spf(
        'softfail (mx: transitioning (x)) client-ip=192.0.2.1; envelope-from="a@b.example";'
        " helo=h.example"
    ) == {
        "result": "softfail",
        "comment": "mx: transitioning (x)",
        "client-ip": "192.0.2.1",
        "envelope-from": "a@b.example",
        "helo": "h.example",
    }


@pytest.mark.parametrize(
    "name", ["postfix_chain.eml", "gmail_style.eml", "forged_hop.eml", "list_arc.eml"]
)
async def test_every_message_analyzes_without_dns_lists(name: str) -> None:
    message = read_message((DATA / name).read_bytes())
    result = await analyze_message(message, resolver(), clock=lambda: NOW)
    assert all(r.dnsbl is None for r in result.reverification.relays)  # type: ignore[union-attr]
    assert result.summary.startswith(f"{len(result.hops)} hops")


async def test_gmail_style_chain() -> None:
    data = await analyze("gmail_style.eml")
    entry, internal = data["hops"]
    assert entry["from"] == {
        "name": "mail.example.com",
        "helo": "mail.example.com",
        "reverse_name": "mail.example.com",
        "ip": "192.0.2.10",
    }
    assert entry["by"] == "mx.google.com"
    assert entry["with"] == {
        "protocol": "ESMTPS",
        "tls": {"version": "TLS1_3", "cipher": "TLS_AES_256_GCM_SHA384"},
    }
    assert entry["time"] == "2026-11-23T02:00:03-08:00"
    assert internal["from"] == {"name": None, "helo": None, "reverse_name": None, "ip": None}
    assert internal["by"] == "2002:a05:6520:2e4c:b0:2a1:c3e5:9c1f"
    assert internal["delay"] == 1.0
    assert [h["trusted"] for h in data["hops"]] == [True, True]
    assert data["boundary"]["hop"] == 1
    assert data["boundary"]["trusted_names"] == ["mx.google.com"]
    ar = header(data, "authentication-results")
    assert ar["trusted"] is True
    assert ar["data"]["results"][0]["properties"]["header.i"] == "@example.com"
    dkim = change(data, "dkim")  # matched by header.b although the field gives header.i only
    assert (dkim["subject"], dkim["then"], dkim["now"]) == (
        "d=example.com s=sel2025",
        "pass",
        "pass",
    )
    assert [c["changed"] for c in data["changes"]] == [False] * len(data["changes"])


async def test_results_written_below_our_own_received_field_are_ours() -> None:
    """Receivers (Gmail, milters, mailwarden's gateway) add Authentication-Results just below
    their Received field; one below the previous hop's Received came from outside."""
    from mailwarden.analyze import analyze_message
    from mailwarden.message import Message

    raw = (
        b"Received: from mail.example.com (mail.example.com [192.0.2.10])\r\n"
        b"\tby mx.example.net (mailwarden) with ESMTP id A1; Mon, 23 Nov 2026 12:00:05 +0000\r\n"
        b"Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=a@example.com;\r\n"
        b"\tdkim=pass header.d=example.com\r\n"
        b"Received: from laptop (unknown [198.51.100.9])\r\n"
        b"\tby mail.example.com with ESMTPSA id B2; Mon, 23 Nov 2026 12:00:01 +0000\r\n"
        b"Authentication-Results: mx.example.net; dmarc=pass header.from=example.com\r\n"
        b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    )
    analysis = await analyze_message(
        Message.from_bytes(raw), None, trusted_hosts=["mx.example.net"]
    )
    data = analysis.to_dict()
    ours, forged = [h for h in data["headers"] if h["kind"] == "authentication-results"]
    assert ours["trusted"] is True
    assert forged["trusted"] is False  # below the earlier hop: in the message before it came
