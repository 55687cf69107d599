"""The `[reports]` section: recording DMARC evaluations, sending aggregate (RFC 9990) and
failure (RFC 9991) reports, and reading the reports others send us.

Sending is off by default and needs a report address, a relay and (for the address's own
DMARC to pass) a DKIM key; recording is on, so `report preview` and `report summary` work
from the first day.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailwarden.dns import is_domain_name, normalize
from mailwarden.schema import InvalidSetting, setting

__all__ = ["FailureSettings", "Redaction", "ReportSettings", "parse_relay"]


class Redaction(StrEnum):
    """How local parts are hidden in failure reports (RFC 6590 §3)."""

    HASH = "hash"  # replaced by a keyed hash: repeats stay recognisable
    REMOVE = "remove"  # replaced by the word "redacted"


def parse_relay(text: object) -> tuple[str, int]:
    """HOST[:PORT] or [V6]:PORT, port 25 by default; ValueError otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected HOST[:PORT], got {text!r}")
    text = text.strip()
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"expected [ADDRESS]:PORT, got {text!r}")
        port = rest[1:] or "25"
    elif text.count(":") > 1:
        raise ValueError(f"an IPv6 relay goes in brackets ([::1]:25), got {text!r}")
    else:
        host, _, port = text.partition(":")
        port = port or "25"
    if not host or any(c.isspace() or ord(c) < 0x20 for c in host):
        raise ValueError(f"invalid host in {text!r}")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
        raise ValueError(f"invalid port in {text!r}")
    return host, int(port)


def _address(text: object) -> str:
    """A plain addr-spec whose domain is a domain name ("" allowed: not configured)."""
    if not isinstance(text, str):
        raise ValueError(f"expected an address, got {text!r}")
    text = text.strip()
    if not text:
        return ""
    local, at, domain = text.rpartition("@")
    if (
        not at
        or not local
        or any(c.isspace() or c in '<>()[]\\,;:"' or ord(c) < 0x20 for c in local)
        or not is_domain_name(normalize(domain))
    ):
        raise ValueError(f"expected a plain address local@domain, got {text!r}")
    return f"{local}@{normalize(domain)}"


def _domain(text: object) -> str:
    if not isinstance(text, str) or not is_domain_name(normalize(text)):
        raise ValueError(f"expected a domain name, got {text!r}")
    return normalize(text)


def _dsn(text: object) -> str | None:
    if text == "":
        return None
    if not isinstance(text, str) or not text.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"expected a postgresql:// URL, got {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class FailureSettings:
    """`[reports.failure]`: RFC 9991 failure reports, off by default (they carry personal
    data; many large receivers send none)."""

    enabled: bool = False
    # at most this many reports a day to one destination; repeats wait, counted (Incidents)
    per_destination_per_day: int = setting(1, min=1, max=1000)
    redaction: Redaction = Redaction.HASH
    include_body: bool = False  # the message body, for the allowlisted domains only
    full_report_domains: tuple[str, ...] = setting((), each=_domain)  # unredacted reports


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """`[reports]`: the report store, aggregate and failure reports, and importing."""

    record: bool = True  # record every DMARC evaluation of the long-running front ends
    keep_days: int = setting(14, min=1, max=400)  # recorded evaluations, then purged
    keep_imported_days: int = setting(400, min=1, max=4000)  # reports others sent us
    postgres: str | None = setting(None, convert=_dsn)  # several gateways reporting as one
    send: bool = False  # the global off switch of outgoing reports
    dry_run: str = setting("", path=True)  # a directory: write reports there, send nothing
    org_name: str = ""  # the Reporting Organization (default: the report address's domain)
    from_address: str = setting("", convert=_address)
    contact: str = ""  # extra_contact_info
    relay: tuple[str, int] = setting(("127.0.0.1", 25), convert=parse_relay)
    starttls: bool = False
    dkim_key: str = setting("", path=True)  # PEM private key signing the report address's mail
    dkim_selector: str = ""
    send_hour: int = setting(1, min=0, max=23)  # UTC hour the previous day's reports start
    spread_hours: float = setting(6.0, min=0, max=23)  # sends spread over this window
    max_report_size: int = setting(1_000_000, min=10_000, max=100_000_000)  # gzip bytes
    max_destinations: int = setting(2, min=1, max=10)  # rua URIs used per domain
    destination_reports_per_day: int = setting(20, min=1)
    destination_bytes_per_day: int = setting(20_000_000, min=10_000)
    reports_per_day: int = setting(20_000, min=1)
    bytes_per_day: int = setting(2_000_000_000, min=10_000)
    require_good_exchange: bool = True  # failing mail of unknown domains is not reported
    max_spam_share: float = setting(0.5, min=0, max=1)  # above: the domain gets no report
    retry_minutes: float = setting(15.0, above=0, max=1440)  # first retry, then doubling
    give_up_days: float = setting(3.0, above=0, max=30)  # a report undelivered this long
    suppress_hours: float = setting(6.0, above=0, max=720)  # after a refusal, doubling
    drop_after_days: float = setting(7.0, above=0, max=365)  # undeliverable: dropped
    dropped_days: float = setting(30.0, above=0, max=365)  # and left alone this long
    watch_maildir: str = setting("", path=True)  # reports (and bounces) arriving here
    max_input_size: int = setting(50_000_000, min=1000)  # one file or message to import
    max_expanded_size: int = setting(200_000_000, min=1000)  # after decompression
    failure: FailureSettings = setting(default_factory=FailureSettings)

    @property
    def report_domain(self) -> str:
        return self.from_address.rpartition("@")[2]

    @property
    def organization(self) -> str:
        return self.org_name or self.report_domain

    def validate(self) -> None:
        if self.send and not self.from_address:
            raise InvalidSetting("from_address", "sending reports needs a report address")
        if bool(self.dkim_key) != bool(self.dkim_selector):
            raise InvalidSetting("dkim_selector", "dkim_key and dkim_selector go together")
        if self.dkim_selector and not is_domain_name(normalize(self.dkim_selector)):
            raise InvalidSetting("dkim_selector", f"not a selector: {self.dkim_selector!r}")
        if self.org_name and any(ord(c) < 0x20 for c in self.org_name):
            raise InvalidSetting("org_name", "control characters are not allowed")
