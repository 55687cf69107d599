"""The whole analysis of realistic messages (tests/analyze/data): summary and JSON report."""

from __future__ import annotations

import pytest
from tests.analyze.helpers import DATA, NOW, analyze, change, header, resolver

from mailwarden.analyze import analyze_message
from mailwarden.message import read_message


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
        "reason_code": "validated",
        "instances": 1,
        "sets": 1,
        "oldest_pass": 0,
    }
    assert now["dkim"][0]["result"] == "fail"  # the list changed the subject
    assert now["spf"]["result"] == "pass"  # team@lists.example.org from 198.51.100.25
    assert now["dmarc"]["result"] == "fail"
    assert change(data, "arc")["then"] == "pass"
    assert change(data, "arc")["now"] == "pass"
