"""Shared pieces of the policy service's tests: a zone, settings, requests."""

from __future__ import annotations

from pathlib import Path

from mailwarden.dns import StaticResolver
from mailwarden.settings import Settings, load_settings

GOOD_IP = "192.0.2.10"  # a.example's SPF allows it
BAD_IP = "198.51.100.7"  # a.example's SPF refuses it
LISTED_IP = "203.0.113.5"  # listed in bl.test

ZONE = """\
$ORIGIN .
$TTL 300
a.example. IN TXT "v=spf1 ip4:192.0.2.10 -all"
mail.a.example. IN A 192.0.2.10
10.2.0.192.in-addr.arpa. IN PTR mail.a.example.
soft.example. IN TXT "v=spf1 ~all"
5.113.0.203.bl.test. IN A 127.0.0.2
2.0.0.127.bl.test. IN A 127.0.0.2
"""

CONFIG = """\
[gateway]
hostname = "mx.b.example"
data_dir = "{data}"
[dnsbl]
use = []
[[dnsbl.lists]]
name = "testbl"
zone = "bl.test"
codes = "127.0.0.2=TESTBL_LISTED:3.0"
ipv6 = false
[policy]
hard_reject = ["TESTBL_LISTED"]
[greylist]
min_delay = 60.0
[policy_service]
{service}
"""


def write_config(root: Path, service: str = "", extra: str = "") -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = root / "mailwarden.toml"
    path.write_text(CONFIG.format(data=data, service=service) + extra)
    (root / "test.zone").write_text(ZONE)
    return path


def settings(root: Path, service: str = "", extra: str = "") -> Settings:
    return load_settings(write_config(root, service, extra))


def resolver() -> StaticResolver:
    static = StaticResolver()
    static.load_master_text(ZONE)
    return static


def request(**attributes: str) -> bytes:
    """One request block as Postfix writes it."""
    base = {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "protocol_name": "ESMTP",
        "client_address": GOOD_IP,
        "client_name": "mail.a.example",
        "reverse_client_name": "mail.a.example",
        "helo_name": "mail.a.example",
        "sender": "alice@a.example",
        "recipient": "bob@b.example",
        "recipient_count": "0",
        "queue_id": "",
        "instance": "1a2b.5f3e1c2d.1",
        "size": "0",
        "sasl_method": "",
        "sasl_username": "",
    }
    base.update(attributes)
    return "".join(f"{k}={v}\n" for k, v in base.items()).encode() + b"\n"
