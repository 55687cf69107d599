"""The `[submission]` section: the message submission server (`mailwarden submit`, RFC 6409).

Its listeners (587 with STARTTLS, 465 with implicit TLS, RFC 8314), the smarthost it relays to,
the user store, password hashing, and the limits that keep a stolen password from turning the
server into a spam cannon: brute-force protection, rate limits and compromise detection.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from mailwarden.dns import normalize
from mailwarden.schema import InvalidSetting, setting

from .gateway import SMTPLimits, Timeouts, TLSSettings, parse_hostport

__all__ = [
    "Argon2Settings",
    "BruteForceSettings",
    "CompromiseSettings",
    "RateLimits",
    "RateOverride",
    "RateSettings",
    "SubmissionSettings",
]


def _listen(text: object) -> tuple[str, int] | None:
    if text == "":
        return None
    return parse_hostport(text, None)  # type: ignore[arg-type]


def _smarthost(text: object) -> tuple[str, int]:
    return parse_hostport(text, 25)  # type: ignore[arg-type]


def _redis_url(value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {value!r}")
    return value


def _ip(value: object) -> str:
    if value == "":
        return ""
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ValueError(f"not an IP address: {value!r}") from None


def _webhook(value: object) -> str:
    if not isinstance(value, str) or (value and not value.startswith(("http://", "https://"))):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


def _delimiter(value: object) -> str:
    if not isinstance(value, str) or len(value) > 1 or value in ("@", '"', " ", "\x00"):
        raise ValueError(f"expected one character (or none), got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Limits of one sender over sliding windows; 0 turns a limit off."""

    messages_per_minute: int = setting(30, min=0)
    messages_per_hour: int = setting(300, min=0)
    messages_per_day: int = setting(1000, min=0)  # mox's default
    recipients_per_message: int = setting(100, min=0)
    recipients_per_day: int = setting(2000, min=0)
    first_time_recipients_per_day: int = setting(200, min=0)  # mox's default


@dataclass(frozen=True, slots=True)
class RateOverride:
    """Limits that replace some of the general ones for one user or one domain's users."""

    messages_per_minute: int | None = setting(None, min=0)
    messages_per_hour: int | None = setting(None, min=0)
    messages_per_day: int | None = setting(None, min=0)
    recipients_per_message: int | None = setting(None, min=0)
    recipients_per_day: int | None = setting(None, min=0)
    first_time_recipients_per_day: int | None = setting(None, min=0)


def _replace(limits: RateLimits, changes: Mapping[str, int]) -> RateLimits:
    values = {name: getattr(limits, name) for name in RateLimits.__dataclass_fields__}
    values.update(changes)
    return RateLimits(**values)


def _client_limits() -> RateLimits:
    # one address may carry several users (an office behind NAT): wider than one user
    return RateLimits(
        messages_per_minute=120,
        messages_per_hour=1200,
        messages_per_day=5000,
        recipients_per_message=0,
        recipients_per_day=20000,
        first_time_recipients_per_day=0,
    )


def _domain_limits() -> RateLimits:
    return RateLimits(
        messages_per_minute=600,
        messages_per_hour=6000,
        messages_per_day=50000,
        recipients_per_message=0,
        recipients_per_day=200000,
        first_time_recipients_per_day=0,
    )


def _override_name(name: str) -> str:
    return name.strip().lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class RateSettings:
    """`[submission.rate]`: limits per authenticated user, per client address and per sender
    domain (all its users together), each over several windows at once; `users` and `domains`
    override the per-user limits for one user or for every user of one domain (a user's own
    override wins)."""

    user: RateLimits = setting(default_factory=RateLimits)
    client: RateLimits = setting(default_factory=_client_limits)
    domain: RateLimits = setting(default_factory=_domain_limits)
    users: Mapping[str, RateOverride] = setting(default_factory=dict)
    domains: Mapping[str, RateOverride] = setting(default_factory=dict)

    def for_user(self, user: str, domain: str) -> RateLimits:
        """The per-user limits of `user`, whose sender domain is `domain`."""
        limits = self.user
        for table, name in ((self.domains, domain), (self.users, user)):
            for key, override in table.items():
                if _override_name(key) == _override_name(name):
                    limits = _replace(limits, _changes(override))
        return limits


def _changes(override: RateOverride) -> dict[str, int]:
    return {
        name: value
        for name in RateLimits.__dataclass_fields__
        if (value := getattr(override, name)) is not None
    }


@dataclass(frozen=True, slots=True)
class BruteForceSettings:
    """`[submission.bruteforce]`: failed AUTH per client address and per account first slow
    the answers down, then block the address (or the account) for a while."""

    window: float = setting(3600.0, above=0)  # seconds failures are remembered
    slow_after: int = setting(3, min=1)  # failures before answers slow down
    delay: float = setting(1.0, min=0, max=60)  # the first slowed answer; doubles each time
    max_delay: float = setting(10.0, min=0, max=120)
    block_client_after: int = setting(10, min=1)  # failures from one address in the window
    block_account_after: int = setting(30, min=1)  # failures for one account in the window
    # addresses the user logged in from within this many days are not blocked by the
    # account limit (an attacker elsewhere must not lock the owner out)
    known_client_days: float = setting(30.0, min=0)


@dataclass(frozen=True, slots=True)
class CompromiseSettings:
    """`[submission.compromise]`: signs of a stolen account, each against a threshold that
    learns from the user's own history (a month-end burst of a known sender is no alarm);
    a sign holds the account's outgoing mail until `mailwarden user release`."""

    enabled: bool = True
    history_days: int = setting(62, min=7, max=400)  # the history thresholds learn from
    volume_factor: float = setting(3.0, min=1)  # a day above factor x the busiest day...
    volume_floor: int = setting(300, min=1)  # ...and above this many messages
    first_time_factor: float = setting(3.0, min=1)  # first-time recipients, the same way
    first_time_floor: int = setting(150, min=1)
    nonexistent_per_hour: int = setting(100, min=1)  # refused by the smarthost with 5.1.x
    refused_per_hour: int = setting(150, min=1)  # any recipient refused downstream
    spam_per_day: int = setting(5, min=1)  # outbound mail our own policy scores as spam
    login_addresses_factor: float = setting(3.0, min=1)  # distinct login addresses a day...
    login_addresses_floor: int = setting(10, min=1)  # ...above this many
    webhook: str = setting("", convert=_webhook)  # POST each alert as JSON here ("" none)


@dataclass(frozen=True, slots=True)
class Argon2Settings:
    """`[submission.argon2]`: the cost of new password hashes (argon2id, RFC 9106 §4's
    second recommendation); existing hashes are upgraded at the next login."""

    time_cost: int = setting(3, min=1, max=100)
    memory_cost: int = setting(65536, min=8, max=4_194_304)  # KiB
    parallelism: int = setting(4, min=1, max=64)


@dataclass(frozen=True, slots=True)
class SubmissionSettings:
    """The submission server (`mailwarden submit`)."""

    listen: tuple[str, int] | None = setting(("127.0.0.1", 587), convert=_listen)  # STARTTLS
    listen_tls: tuple[str, int] | None = setting(("127.0.0.1", 465), convert=_listen)
    hostname: str = ""  # greeting and Received; "" is [gateway] hostname
    smarthost: tuple[str, int] = setting(("127.0.0.1", 25), convert=_smarthost)
    users_file: str = setting("", path=True)  # "" is users.sqlite3 in the data directory
    redis: str | None = setting(None, convert=_redis_url)  # shared counters; None: SQLite
    outbound_ip: str = setting("", convert=_ip)  # where we send from: score outbound mail
    recipient_delimiter: str = setting("+", convert=_delimiter)  # alice+tag is alice's
    add_missing_fields: bool = True  # Date and Message-ID (RFC 6409 §8.2, §8.3)
    log_file: str = setting("-", path=True)
    auth_cache: float = setting(300.0, min=0, max=86_400)  # seconds a good login is cached
    argon2: Argon2Settings = setting(default_factory=Argon2Settings)
    limits: SMTPLimits = setting(default_factory=SMTPLimits)
    timeouts: Timeouts = setting(default_factory=Timeouts)
    tls: TLSSettings = setting(default_factory=TLSSettings)
    rate: RateSettings = setting(default_factory=RateSettings)
    bruteforce: BruteForceSettings = setting(default_factory=BruteForceSettings)
    compromise: CompromiseSettings = setting(default_factory=CompromiseSettings)

    def validate(self) -> None:
        if self.listen is None and self.listen_tls is None:
            raise InvalidSetting("listen", "listen and listen_tls are both off")
        name = self.hostname.strip()
        if name and (any(c.isspace() or c in '()<>[]\\"' for c in name) or "\x00" in name):
            raise InvalidSetting("hostname", f"not a host name: {self.hostname!r}")
        if not self.tls.enabled:
            raise InvalidSetting("tls.enabled", "submission needs TLS (RFC 8314)")
        for table in ("users", "domains"):
            for key in getattr(self.rate, table):
                if not key.strip() or (table == "domains" and not normalize(key)):
                    raise InvalidSetting(f"rate.{table}", f"not a name: {key!r}")
