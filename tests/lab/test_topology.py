"""The lab's zones: every one loads in a real DNS server's parser, and they say what the story
needs (forward-confirmed names for the servers, none for the zombie, SPF for each sender, the
block list with its RFC 5782 test entries, each key where DKIM looks for it)."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import dns.zone
import pytest
from lab.topology import ADDRESSES, BLOCKLIST, LISTED, NAMESERVER, TTL, DKIMKey, Zones

KEY = "v=DKIM1; k=rsa; p=" + "A" * 392  # as long as an RSA-2048 record: cut in two strings


def zones() -> dict[str, dns.zone.Zone]:
    rendered = Zones(keys=[DKIMKey("a.example", "lab-rsa", KEY)]).render()
    return {
        apex: dns.zone.from_text(text, origin=apex, relativize=False)
        for apex, text in rendered.items()
    }


def lookup(name: str, rdtype: str) -> list[str]:
    """The records for `name` in the most specific zone holding it (as nsd answers)."""
    owner = dns.name.from_text(name)
    loaded = zones()
    apex = max((a for a in loaded if owner.is_subdomain(dns.name.from_text(a))), key=len)
    rdataset = loaded[apex].get_rdataset(owner, dns.rdatatype.from_text(rdtype))
    return [r.to_text() for r in rdataset] if rdataset else []


def test_every_zone_loads_with_the_short_ttl() -> None:
    loaded = zones()
    assert set(loaded) == {
        "example", "a.example", "b.example", "lists.c.example", "fwd.d.example",
        "99.10.in-addr.arpa", BLOCKLIST,
    }  # fmt: skip
    for zone in loaded.values():
        for _, rdataset in zone.iterate_rdatasets():
            assert rdataset.ttl == TTL


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("a", "mail.a.example"),
        ("b", "mx.b.example"),
        ("list", "mx.lists.c.example"),
        ("fwd", "mx.fwd.d.example"),
    ],
)
def test_servers_have_forward_confirmed_names_and_may_send(host: str, name: str) -> None:
    address = ADDRESSES[host][0]
    reverse = ".".join(reversed(address.split("."))) + ".in-addr.arpa"
    assert lookup(reverse, "PTR") == [f"{name}."]
    assert lookup(name, "A") == [address]
    assert lookup(name, "TXT") == [f'"v=spf1 ip4:{address} -all"']  # the HELO identity
    domain = name.split(".", 1)[1]
    assert lookup(domain, "MX") == [f"10 {name}."]
    assert lookup(domain, "TXT") == [f'"v=spf1 ip4:{address} -all"']


def test_the_zombie_has_no_name_and_one_of_its_addresses_is_listed() -> None:
    for address in ADDRESSES["zombie"]:
        reverse = ".".join(reversed(address.split("."))) + ".in-addr.arpa"
        assert lookup(reverse, "PTR") == []
    listed = ".".join(reversed(LISTED.split("."))) + f".{BLOCKLIST}"
    assert lookup(listed, "A") == ["127.0.0.2"]
    assert lookup(f"6.66.99.10.{BLOCKLIST}", "A") == []
    assert lookup(f"2.0.0.127.{BLOCKLIST}", "A") == ["127.0.0.2"]  # RFC 5782 §5
    assert lookup(f"1.0.0.127.{BLOCKLIST}", "A") == []


def test_policies() -> None:
    assert lookup("_dmarc.a.example", "TXT") == ['"v=DMARC1; p=reject; adkim=r; aspf=r"']
    assert lookup("_dmarc.b.example", "TXT") == ['"v=DMARC1; p=reject"']
    assert lookup("_dmarc.example", "TXT") == []  # the tree walk's next step: nothing
    assert lookup("ns.example", "A") == [NAMESERVER]


def test_a_long_key_is_published_in_strings_of_at_most_255_octets() -> None:
    [record] = lookup("lab-rsa._domainkey.a.example", "TXT")
    strings = record.strip('"').split('" "')
    assert "".join(strings) == KEY
    assert [len(s) for s in strings] == [255, len(KEY) - 255]


def test_the_srs_domain_may_be_sent_as_by_the_forwarder_and_takes_its_bounces() -> None:
    assert lookup("srs.fwd.d.example", "MX") == ["10 mx.fwd.d.example."]
    assert lookup("srs.fwd.d.example", "TXT") == [f'"v=spf1 ip4:{ADDRESSES["fwd"][0]} -all"']
