"""The checks run again now (DKIM, SPF, DMARC, iprev, DNS lists) for the boundary address and
every relay: rotated keys, DNS trouble, the --ip option, no DNS at all."""

from __future__ import annotations

from tests.analyze.helpers import DATA, NOW, analyze, change, resolver

from mailwarden.analyze import analyze_message
from mailwarden.dns import Failure, RdType
from mailwarden.message import read_message


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
