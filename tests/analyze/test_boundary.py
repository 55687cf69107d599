"""The trust boundary: from the authserv-id, --trusted-host, or the topmost hop; forged
hops below it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.analyze.helpers import DATA, analyze, header, hop, message_with

from mailwarden.analyze import BoundaryMethod, find_boundary, read_hops, trusted_host
from mailwarden.message import read_message


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


# -- hosts named by address (issue 12 item 11): real Received fields name hops by address ------

BY_ADDRESS = [
    "from [10.0.0.1] (unknown [10.0.0.1]) by 10.0.0.2; Mon, 23 Nov 2026 10:00:02 +0000",
    "from mail.example.com (mail.example.com [192.0.2.10]) by [10.0.0.1];"
    " Mon, 23 Nov 2026 10:00:01 +0000",
]


@pytest.mark.parametrize(
    "trusted",
    [
        ["10.0.0.1", "10.0.0.2"],
        ["10.0.0.0/24"],
        ["10.9.9.9/8"],  # a network given by any of its addresses
        ["[10.0.0.1]", "10.0.0.2"],  # as a Received field writes it
        ["10.0.0.2", "10.0.0.1"],
    ],
)
def test_trusted_hosts_by_address(trusted: list[str]) -> None:
    message = read_message(message_with(BY_ADDRESS))
    boundary, hops = find_boundary(read_hops(message), [trusted_host(t) for t in trusted])
    assert boundary.method is BoundaryMethod.TRUSTED_HOST
    assert (boundary.hop, str(boundary.ip), boundary.by) == (1, "192.0.2.10", "[10.0.0.1]")
    assert [h.trusted for h in hops] == [True, True]


def test_a_trusted_address_outside_the_chain_trusts_nothing() -> None:
    message = read_message(message_with(BY_ADDRESS))
    boundary, _ = find_boundary(read_hops(message), ["192.0.2.99"])
    assert boundary.method is BoundaryMethod.TOPMOST
    assert boundary.hop == 2


def test_an_ipv6_hop_named_by_its_address() -> None:
    message = read_message((DATA / "gmail_style.eml").read_bytes())
    boundary, hops = find_boundary(read_hops(message), [trusted_host("2002:a05:6520::/48")])
    assert boundary.method is BoundaryMethod.TRUSTED_HOST
    assert boundary.by == "2002:a05:6520:2e4c:b0:2a1:c3e5:9c1f"
    assert [h.trusted for h in hops] == [False, True]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.0.2.7/32", "192.0.2.7"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("[192.0.2.1]", "192.0.2.1"),
        ("[IPv6:2001:db8::1]", "2001:db8::1"),
        ("MX.Example.NET.", "mx.example.net"),
        ("example.net", "example.net"),
    ],
)
def test_trusted_host_forms(text: str, canonical: str) -> None:
    assert trusted_host(text) == canonical


@pytest.mark.parametrize(
    "text",
    ["999.1.1.1", "192.0.2.1/33", "fe80::1%eth0", "bad host", "", "1.2.3", "a..b", "[x]", "\0"],
)
def test_trusted_host_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"not"):
        trusted_host(text)


@given(st.text(max_size=60))
def test_trusted_host_is_canonical_or_refused(text: str) -> None:
    try:
        canonical = trusted_host(text)
    except ValueError:
        return
    assert trusted_host(canonical) == canonical
