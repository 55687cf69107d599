"""Who is who in the lab: the hosts, their addresses and names, and the DNS zones that say so.

    10.99.0.53    ns.example            nsd: every zone below, dnstap on
    10.99.7.10    (Alice's laptop)      swaks, submitting to her provider
    10.99.1.25    mail.a.example        a.example's MSA (mailwarden submit, :587) and MTA (Postfix)
    10.99.2.25    mx.b.example          b.example's MX (mailwarden serve) before Bob's mailbox
    10.99.3.25    mx.lists.c.example    a mailing list: tags the subject, adds a footer, ARC-seals
    10.99.4.25    mx.fwd.d.example      a forwarder: bob@fwd.d.example goes to bob@b.example, its
                                        sender rewritten into srs.fwd.d.example (SRS)
    10.99.66.6    (a zombie)            no name, no right to send for a.example
    10.99.66.66   (the same zombie)     listed in the block list bl.example

The zones are generated from these tables plus the DKIM and ARC public keys of the run, with a
TTL of 5 seconds: mailwarden's resolver keeps answers at least 5 seconds, and the lab waits that
long between scenarios so that every scenario's lookups reach the DNS server (and its log).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .netns import Host

__all__ = [
    "ADDRESSES",
    "HOSTS",
    "NAMESERVER",
    "TTL",
    "DKIMKey",
    "Zones",
]

NAMESERVER = "10.99.0.53"
TTL = 5

ADDRESSES = {
    "dns": (NAMESERVER,),
    "alice": ("10.99.7.10",),
    "a": ("10.99.1.25",),
    "b": ("10.99.2.25",),
    "list": ("10.99.3.25",),
    "fwd": ("10.99.4.25",),
    "zombie": ("10.99.66.6", "10.99.66.66"),
}
HOSTS = tuple(Host(name, addresses) for name, addresses in ADDRESSES.items())
LISTED = "10.99.66.66"  # the zombie's address the block list names

A_MTA = "mail.a.example"
B_MX = "mx.b.example"
LIST_MX = "mx.lists.c.example"
FWD_MX = "mx.fwd.d.example"
SRS_DOMAIN = "srs.fwd.d.example"
BLOCKLIST = "bl.example"


@dataclass(frozen=True, slots=True)
class DKIMKey:
    """A public key to publish: selector._domainkey.domain TXT record."""

    domain: str
    selector: str
    record: str  # "v=DKIM1; k=rsa; p=..."


def _txt(text: str) -> str:
    """A TXT record's data: character-strings of at most 255 octets (RFC 1035 §3.3)."""
    pieces = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join(f'"{piece}"' for piece in pieces)


def _zone(origin: str, records: list[tuple[str, str, str]]) -> str:
    lines = [
        f"$ORIGIN {origin}.",
        f"$TTL {TTL}",
        f"@ IN SOA ns.example. hostmaster.{origin}. 1 3600 600 86400 {TTL}",
        "@ IN NS ns.example.",
    ]
    lines += [f"{name} IN {rdtype} {data}" for name, rdtype, data in records]
    return "\n".join(lines) + "\n"


def _reverse_label(address: str) -> str:
    """10.99.1.25 -> 25.1 (the name inside 99.10.in-addr.arpa)."""
    octets = address.split(".")
    return f"{octets[3]}.{octets[2]}"


@dataclass
class Zones:
    """The lab's zones, keyed by apex. `keys`: the DKIM and ARC keys to publish."""

    keys: list[DKIMKey] = field(default_factory=list)
    extra: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    def render(self) -> dict[str, str]:
        records: dict[str, list[tuple[str, str, str]]] = {
            # the parent of them all answers NXDOMAIN for what is not delegated, such as
            # _dmarc.example or _dmarc.c.example asked by DMARC's tree walk (RFC 9989 §4.10)
            "example": [
                ("ns", "A", NAMESERVER),
                *[(child, "NS", "ns.example.") for child in ("a", "b", "lists.c", "fwd.d", "bl")],
            ],
            "a.example": [
                ("@", "MX", f"10 {A_MTA}."),
                # SPF (RFC 7208): only a.example's MTA may send as a.example
                ("@", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['a'][0]} -all")),
                # DMARC (RFC 9989): refuse what fails
                ("_dmarc", "TXT", _txt("v=DMARC1; p=reject; adkim=r; aspf=r")),
                ("mail", "A", ADDRESSES["a"][0]),
                ("mail", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['a'][0]} -all")),  # HELO identity
            ],
            "b.example": [
                ("@", "MX", f"10 {B_MX}."),
                ("@", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['b'][0]} -all")),
                ("_dmarc", "TXT", _txt("v=DMARC1; p=reject")),
                ("mx", "A", ADDRESSES["b"][0]),
                ("mx", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['b'][0]} -all")),
            ],
            "lists.c.example": [
                ("@", "MX", f"10 {LIST_MX}."),
                ("@", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['list'][0]} -all")),
                ("_dmarc", "TXT", _txt("v=DMARC1; p=none")),
                ("mx", "A", ADDRESSES["list"][0]),
                ("mx", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['list'][0]} -all")),
            ],
            "fwd.d.example": [
                ("@", "MX", f"10 {FWD_MX}."),
                ("@", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['fwd'][0]} -all")),
                ("_dmarc", "TXT", _txt("v=DMARC1; p=none")),
                ("mx", "A", ADDRESSES["fwd"][0]),
                ("mx", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['fwd'][0]} -all")),
                ("mta", "A", ADDRESSES["fwd"][0]),  # its Postfix's name (bounces come from it)
                # the dedicated SRS domain: the forwarder may send as it, bounces reach it
                ("srs", "MX", f"10 {FWD_MX}."),
                ("srs", "TXT", _txt(f"v=spf1 ip4:{ADDRESSES['fwd'][0]} -all")),
            ],
            # forward-confirmed reverse DNS for the servers; none for the laptop and the zombie
            "99.10.in-addr.arpa": [
                (_reverse_label(ADDRESSES["dns"][0]), "PTR", "ns.example."),
                (_reverse_label(ADDRESSES["a"][0]), "PTR", f"{A_MTA}."),
                (_reverse_label(ADDRESSES["b"][0]), "PTR", f"{B_MX}."),
                (_reverse_label(ADDRESSES["list"][0]), "PTR", f"{LIST_MX}."),
                (_reverse_label(ADDRESSES["fwd"][0]), "PTR", f"{FWD_MX}."),
            ],
            # the block list (RFC 5782): the zombie's second address, and the test entry
            BLOCKLIST: [
                (".".join(reversed(LISTED.split("."))), "A", "127.0.0.2"),
                (
                    ".".join(reversed(LISTED.split("."))),
                    "TXT",
                    _txt(f"{LISTED} sent spam to the lab's spam traps"),
                ),
                ("2.0.0.127", "A", "127.0.0.2"),
                ("2.0.0.127", "TXT", _txt("the test entry (RFC 5782 section 5)")),
            ],
        }
        for apex, extra in self.extra.items():
            records[apex].extend(extra)
        for key in self.keys:
            apex = key.domain
            records[apex].append((f"{key.selector}._domainkey", "TXT", _txt(key.record)))
        return {apex: _zone(apex, entries) for apex, entries in records.items()}
