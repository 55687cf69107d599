"""Greylisting (RFC 6647): configuration, keys, entries, and the pure decision rules.

Nothing here does I/O: `advance` is the state transition of one triplet entry, `decide` turns
a transition into a decision, and `exemption` says which mail is never greylisted. Stores
apply `advance` atomically; `Greylister` (engine.py) wires them together.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.dns import IPAddress, is_domain_name, normalize
from mailwarden.ipinput import looks_like_ipv4, parse_ip_input
from mailwarden.schema import setting

__all__ = [
    "AllowEntry",
    "Entry",
    "GreylistAction",
    "GreylistConfig",
    "GreylistDecision",
    "GreylistStage",
    "NetworkEntry",
    "TripletKey",
    "advance",
    "allow_targets",
    "check_allow_entry",
    "client_network",
    "decide",
    "exemption",
    "is_valid_time",
    "normalize_recipient",
    "normalize_sender",
    "parse_allow_target",
    "stored_count",
    "stored_time",
]


class GreylistStage(StrEnum):
    """When the policy greylists: after DATA with every fact known (default), or at RCPT."""

    DATA = "data"
    RCPT = "rcpt"


class GreylistAction(StrEnum):
    PASS = "pass"
    DEFER = "defer"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(text: object) -> IPNetwork:
    if not isinstance(text, str):
        raise ValueError(f"expected a network (CIDR) string, got {text!r}")
    return ipaddress.ip_network(text, strict=False)


def _name(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a domain or an address, got {text!r}")
    return normalize(text)


@dataclass(frozen=True, slots=True)
class GreylistConfig:
    """Greylisting settings (RFC 6647 §6 recommends the delays and lifetimes below).

    `stage` is read by the gateway: greylisting is one of the policy's actions, taken at
    `stage` for mail whose score reaches the policy's greylist threshold (policy.thresholds).
    `spf_pool` keys mail whose MAIL FROM
    passed SPF by "spf:<domain>" instead of the client network, so a provider retrying from
    another of its addresses is recognised.
    """

    min_delay: float = setting(300.0, min=0)  # a retry sooner than this is deferred again
    retry_window: float = setting(86_400.0, above=0)  # a first attempt is forgotten after this
    pass_ttl: float = setting(36 * 86_400.0, above=0)  # passed triplets: kept after last use
    auto_allow_after: int = setting(5, min=0)  # a network that passed this often skips it
    ipv4_prefix: int = setting(24, min=0, max=32)
    ipv6_prefix: int = setting(64, min=0, max=128)
    stage: GreylistStage = GreylistStage.DATA
    spf_pool: bool = True
    exempt_networks: tuple[IPNetwork, ...] = setting((), each=_network)
    exempt_domains: tuple[str, ...] = setting((), each=_name)  # sender domains and below
    exempt_recipients: tuple[str, ...] = setting((), each=_name)  # addresses or domains
    purge_interval: float = setting(3600.0, above=0, internal=True)
    reply_text: str = setting("Greylisted, please try again in {delay} seconds", internal=True)

    def __post_init__(self) -> None:
        if self.min_delay < 0:
            raise ValueError("greylist min_delay must not be negative")
        if self.retry_window <= self.min_delay:
            raise ValueError("greylist retry_window must be longer than min_delay")
        if self.pass_ttl <= 0:
            raise ValueError("greylist pass_ttl must be positive")
        if not 0 <= self.ipv4_prefix <= 32 or not 0 <= self.ipv6_prefix <= 128:
            raise ValueError("greylist network prefixes: 0..32 for IPv4, 0..128 for IPv6")
        if self.auto_allow_after < 0:
            raise ValueError("greylist auto_allow_after must not be negative (0 disables)")


@dataclass(frozen=True, slots=True)
class TripletKey:
    """What a retry must repeat: the origin (client network, or SPF-authorised pool), the
    normalised envelope sender and the recipient."""

    origin: str  # "net:192.0.2.0/24", "net:2001:db8::/64" or "spf:example.com"
    sender: str  # normalize_sender(); "<>" for the null reverse-path
    recipient: str  # normalize_recipient()

    def __str__(self) -> str:
        return f"{self.origin} {self.sender} {self.recipient}"


@dataclass(frozen=True, slots=True)
class Entry:
    """A triplet's state: pending (passed_at None) or passed. Gone once `expires_at` is past."""

    key: TripletKey
    first_seen: float
    last_seen: float
    attempts: int
    passed_at: float | None
    expires_at: float

    @property
    def passed(self) -> bool:
        return self.passed_at is not None


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """A manual allow: "net:<network>", "domain:<domain>" or "sender:<address>"."""

    target: str
    added_at: float
    expires_at: float | None = None  # None: until removed
    note: str = ""


@dataclass(frozen=True, slots=True)
class NetworkEntry:
    """How often a client network passed greylisting (auto-allow after enough)."""

    network: str
    passes: int
    expires_at: float


# Times are seconds since the epoch; a store holds only those a date can show (years 1..9999).
MIN_TIME = -62_135_596_800.0  # 0001-01-01T00:00:00Z
MAX_TIME = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def is_valid_time(value: object) -> bool:
    """A finite number of seconds within the years 1..9999 (never nan, inf or text)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and MIN_TIME <= value <= MAX_TIME
    )


def check_allow_entry(entry: AllowEntry) -> None:
    """ValueError unless `entry`'s times are valid: every store checks before writing, so no
    entry with an infinite or unreadable expiry is ever stored."""
    if not is_valid_time(entry.added_at):
        raise ValueError(f"allow entry {entry.target}: added_at {entry.added_at!r} is not a time")
    if entry.expires_at is not None and not is_valid_time(entry.expires_at):
        raise ValueError(
            f"allow entry {entry.target}: expires_at {entry.expires_at!r} is not a time"
        )


def stored_time(value: object) -> float:
    """A time read back from a store; NaN when the store holds something that is not a number
    (a row written by hand or by an older version), so it is shown flagged, never fatal."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | bytes):
        return math.nan
    try:
        return float(value)
    except (ValueError, OverflowError):  # "soon", or an integer beyond any float
        return math.nan


def stored_count(value: object) -> int:
    """A count read back from a store; -1 when it is not a whole number (flagged, not fatal)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | bytes):
        return -1
    try:
        return int(value)
    except (ValueError, OverflowError):  # "many", nan, inf
        return -1


@dataclass(frozen=True, slots=True)
class GreylistDecision:
    """Pass, or defer with `retry_after` seconds and the 451 4.7.1 reply (RFC 6647 §2.1)."""

    action: GreylistAction
    reason: str
    key: TripletKey | None = None
    retry_after: int = 0
    smtp_code: int | None = None
    enhanced_code: str | None = None
    text: str | None = None
    exempt: bool = False  # passed without consulting the triplet (allowed or exempt)

    @property
    def reply(self) -> str | None:
        """The SMTP reply line for a defer: "451 4.7.1 Greylisted, ..."."""
        if self.action is GreylistAction.PASS:
            return None
        return f"{self.smtp_code} {self.enhanced_code} {self.text}"


_BATV = re.compile(r"^(?:prvs|msprvs1)=[^=@]+=(.+)$|^btv1==[^=@]+==(.+)$")
_DIGITS = re.compile(r"\d+")


def normalize_sender(address: str) -> str:
    """The envelope sender as a key: lower case, without angle brackets, BATV tags
    (prvs=TAG=user), sub-address (+ext) and digit runs (VERP counters) — so the tagged
    per-message addresses of one sender are one key. "<>" for the null reverse-path."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not text:
        return "<>"
    local, at, domain = text.rpartition("@")
    if not at:
        return text.lower()
    local = local.lower()
    batv = _BATV.match(local)
    if batv:
        local = batv.group(1) or batv.group(2)
    if "+" in local[1:]:
        local = local[: local.index("+", 1)]
    local = _DIGITS.sub("#", local)
    return f"{local}@{normalize(domain)}"


def normalize_recipient(address: str) -> str:
    """The recipient as a key: lower case, without angle brackets."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text.lower().rstrip(".")


def client_network(ip: IPAddress, config: GreylistConfig) -> str:
    """ "net:" + the client's /24 (IPv4) or /64 (IPv6) by default."""
    if ip.version == 4:
        return f"net:{_v4_network(int(ip), config.ipv4_prefix)}"
    return f"net:{_v6_network(int(ip), config.ipv6_prefix)}"


def _v4_network(value: int, length: int) -> str:
    # The text ipaddress gives, built without it: this runs for every decision.
    m = value & (((1 << length) - 1) << (32 - length))
    return f"{m >> 24}.{(m >> 16) & 255}.{(m >> 8) & 255}.{m & 255}/{length}"


def _v6_network(value: int, length: int) -> str:
    masked = value & (((1 << length) - 1) << (128 - length))
    return f"{ipaddress.IPv6Address(masked)}/{length}"


def allow_targets(ip: IPAddress, sender: str) -> list[str]:
    """Every allow entry that would cover this client and sender: the networks holding the
    address (every IPv4 prefix length; IPv6 on nibble boundaries, as `parse_allow_target`
    requires), the sender domain and its parents, and the sender."""
    value = int(ip)
    if ip.version == 4:
        targets = [f"net:{_v4_network(value, length)}" for length in range(32, -1, -1)]
    else:
        targets = [f"net:{_v6_network(value, length)}" for length in range(128, -1, -4)]
    if "@" in sender:
        domain = sender.rpartition("@")[2]
        labels = domain.split(".")
        targets.extend(f"domain:{'.'.join(labels[i:])}" for i in range(len(labels)))
        targets.append(f"sender:{sender}")
    return targets


def parse_allow_target(text: str, config: GreylistConfig | None = None) -> str:
    """An allow target from user input: an address or network ("net:..."), an e-mail address
    ("sender:...") or a domain ("domain:..."). ValueError with a clear message otherwise."""
    value = text.strip()
    for prefix in ("net:", "domain:", "sender:"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
            break
    if not value:
        raise ValueError("empty allow target")
    if not value.isprintable():
        raise ValueError(f"invalid allow target {text!r}: control characters")
    if "@" in value:
        local, _, domain = value.rpartition("@")
        if not local or not _is_domain(domain):
            raise ValueError(f"{text!r} is not a valid e-mail address")
        return f"sender:{normalize_sender(value)}"
    address, slash, _ = value.partition("/")
    if slash or ":" in value or looks_like_ipv4(value):  # an address or network, never a domain
        parse_ip_input(address, "address")  # scoped IPv6 and 999.1.1.1 refused, saying so
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise ValueError(f"invalid network {text!r}: {exc}") from None
        if network.version == 6 and network.prefixlen % 4:
            raise ValueError(f"IPv6 network {network}: the prefix length must be a multiple of 4")
        return f"net:{network}"  # a single address is its /32 or /128
    if not _is_domain(value):
        raise ValueError(
            f"{text!r} is neither an address, a network, an e-mail address nor a domain"
        )
    return f"domain:{normalize(value)}"


def _is_domain(name: str) -> bool:
    """A domain of two labels or more; all-numeric labels are an address (RFC 1123 §2.1)."""
    return is_domain_name(name) and "." in name.strip(".") and not looks_like_ipv4(name)


def exemption(
    ip: IPAddress,
    sender: str,
    recipient: str,
    config: GreylistConfig,
    *,
    authenticated: bool,
    dnswl_hit: bool,
) -> str | None:
    """Why this mail is never greylisted, or None: authenticated clients, DNSWL hits,
    configured networks, sender domains and recipients."""
    if authenticated:
        return "authenticated client"
    if dnswl_hit:
        return "client listed in a DNS allow list"
    for network in config.exempt_networks:
        if ip.version == network.version and ip in network:
            return f"client in exempt network {network}"
    domain = sender.rpartition("@")[2] if "@" in sender else ""
    if domain and _under_any(domain, config.exempt_domains):
        return f"sender domain {domain} is exempt"
    rcpt_domain = recipient.rpartition("@")[2]
    for item in config.exempt_recipients:
        item = item.lower()
        if recipient == item or (("@" not in item) and _under_any(rcpt_domain, (item,))):
            return f"recipient {recipient} is exempt"
    return None


def _under_any(domain: str, parents: Iterable[str]) -> bool:
    return any(domain == p.lower() or domain.endswith("." + p.lower()) for p in parents)


def advance(entry: Entry | None, key: TripletKey, now: float, config: GreylistConfig) -> Entry:
    """The triplet's state after one more delivery attempt now (RFC 6647 §2.2)."""
    if entry is None or entry.expires_at <= now:
        # First sight (or forgotten): remember it until the retry window closes.
        return Entry(key, now, now, 1, None, now + config.retry_window)
    if entry.passed:
        # Known good: keep it for another pass_ttl from its last use.
        return Entry(
            key, entry.first_seen, now, entry.attempts + 1, entry.passed_at, now + config.pass_ttl
        )
    if now - entry.first_seen < config.min_delay:
        # Too early a retry: still pending, the window still counts from the first attempt.
        return Entry(key, entry.first_seen, now, entry.attempts + 1, None, entry.expires_at)
    return Entry(key, entry.first_seen, now, entry.attempts + 1, now, now + config.pass_ttl)


def decide(old: Entry | None, new: Entry, now: float, config: GreylistConfig) -> GreylistDecision:
    """The decision a transition old -> new means."""
    if new.passed:
        if old is not None and old.passed and old.expires_at > now:
            reason = f"known triplet, passed {_ago(now - (new.passed_at or now))} ago"
        else:
            reason = f"retried after {int(now - new.first_seen)} s (minimum {config.min_delay:g} s)"
        return GreylistDecision(GreylistAction.PASS, reason, new.key)
    delay = max(1, int(-(-(new.first_seen + config.min_delay - now) // 1)))
    if new.attempts == 1:
        reason = "first attempt of this triplet"
    else:
        reason = (
            f"retry too early (attempt {new.attempts}, {int(now - new.first_seen)} s after first)"
        )
    text = config.reply_text.format(delay=delay)
    return GreylistDecision(GreylistAction.DEFER, reason, new.key, delay, 451, "4.7.1", text)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    if seconds < 172_800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"
