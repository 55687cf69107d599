"""The `[policy_service]` section: the Postfix SMTPD access policy service (`mailwarden policy`).

Which checks answer Postfix's `check_policy_service` requests (greylisting, SPF, DNS lists,
rate limits of authenticated senders), where the service listens (TCP or a UNIX socket), and
the limits that keep a misbehaving peer from holding it: connections, request size, and how
long a request may take to arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailwarden.schema import setting

from .gateway import parse_hostport

__all__ = [
    "GreylistMode",
    "PolicyServiceSettings",
    "SPFMode",
    "UnixPath",
    "parse_listen",
]


class UnixPath(str):
    """A UNIX-domain socket path (`unix:/path` in the settings and on the command line)."""

    __slots__ = ()


def parse_listen(text: object) -> tuple[str, int] | UnixPath:
    """`HOST:PORT` (TCP) or `unix:/absolute/path`. Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"expected HOST:PORT or unix:/path, got {text!r}")
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path.startswith("/"):
            raise ValueError(f"a UNIX socket path must be absolute: {text!r}")
        if "\x00" in path or len(path.encode("utf-8", "surrogateescape")) > 107:
            raise ValueError(f"not a usable UNIX socket path: {text!r}")  # sun_path: 108 bytes
        return UnixPath(path)
    return parse_hostport(text, None)


def _listen(text: object) -> str:
    parsed = parse_listen(text)
    if isinstance(parsed, UnixPath):
        return f"unix:{parsed}"
    host, port = parsed
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GreylistMode(StrEnum):
    """`score`: as the gateway, only mail whose score at RCPT reaches the policy's greylist
    threshold; `always`: every new triplet (postgrey's way); `off`."""

    SCORE = "score"
    ALWAYS = "always"
    OFF = "off"


class SPFMode(StrEnum):
    """`prepend`: a Received-SPF field on the message, nothing refused; `reject`: SPF fail
    refused with 550 5.7.23 and temperror deferred with 451 4.7.24 (RFC 7372), Received-SPF
    on the rest; `off`."""

    OFF = "off"
    PREPEND = "prepend"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class PolicyServiceSettings:
    """`[policy_service]`: Postfix's access policy delegation (SMTPD_POLICY_README)."""

    listen: str = setting("127.0.0.1:10040", convert=_listen)  # HOST:PORT or unix:/path
    greylist: GreylistMode = GreylistMode.SCORE  # [greylist] stores and keys, at RCPT
    spf: SPFMode = SPFMode.PREPEND
    dnsbl: bool = True  # hard DNS-list hits ([dnsbl]) refused at RCPT
    # authenticated senders (sasl_username) charged against [submission.rate.user] at
    # END-OF-MESSAGE (check_policy_service in smtpd_end_of_data_restrictions)
    rate_limits: bool = False
    max_connections: int = setting(200, min=1, max=100_000)
    max_line: int = setting(8192, min=256, max=1_048_576)  # bytes of one name=value line
    max_attributes: int = setting(100, min=8, max=10_000)  # lines in one request
    # Postfix closes an idle connection after smtpd_policy_service_max_idle (300 s): ours
    # waits longer, so it is Postfix that closes (no request is ever cut by us)
    idle_timeout: float = setting(330.0, above=0, max=86_400)
    read_timeout: float = setting(10.0, above=0, max=600)  # a begun request must end within
