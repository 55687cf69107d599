"""The Received chain in travel order: fields, delays, time flags, unreadable fields."""

from __future__ import annotations

from tests.analyze.helpers import NOW, analyze, hop, message_with

from mailwarden.analyze import MAX_CLOCK_SKEW, read_hops
from mailwarden.message import read_message


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
