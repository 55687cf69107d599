"""The `[http]` section: the HTTP API (`mailwarden http`, `serve --http`).

Where it listens (loopback unless configured otherwise: a listener on any other address needs a
token), the bearer token of the administrative endpoints, and the limits that keep a client from
holding the server: the largest request body and how long a request may take to arrive.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from mailwarden.schema import InvalidSetting, setting

from .errors import ConfigError
from .gateway import parse_hostport

__all__ = ["HTTPSettings", "is_loopback", "read_token"]

MIN_TOKEN = 16  # characters: a shorter bearer token is guessable


def _listen(text: object) -> tuple[str, int]:
    return parse_hostport(text, 8025)  # type: ignore[arg-type]


def _token(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    if value and (len(value) < MIN_TOKEN or not value.isascii() or not value.isprintable()):
        raise ValueError(f"expected at least {MIN_TOKEN} printable ASCII characters")
    if value != value.strip():
        raise ValueError("leading or trailing white space")
    return value


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    """`[http]`: the HTTP API's listener, token and limits."""

    listen: tuple[str, int] = setting(("127.0.0.1", 8025), convert=_listen)
    token: str = setting("", convert=_token)  # the bearer token; empty: token_file, or none
    token_file: str = setting("", path=True)  # a file holding the token (one line)
    open_check: bool = False  # POST /v1/check without the token (when one is set)
    max_body: int = setting(26_214_400, min=1024, max=1 << 30)  # bytes: 413 beyond
    header_timeout: float = setting(15.0, above=0, max=600)  # request line + headers; idle
    body_timeout: float = setting(60.0, above=0, max=3600)  # the whole body, once headers came
    max_connections: int = setting(256, min=1, max=100_000)  # open at once: 503 beyond
    health_name: str = "."  # the name /health asks DNS for (its SOA): any answer is health

    def validate(self) -> None:
        if self.token and self.token_file:
            raise InvalidSetting("token_file", "set token or token_file, not both")


def is_loopback(host: str) -> bool:
    """`host` (an address or "localhost") reaches only this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(settings: HTTPSettings, source: str = "<settings>") -> str:
    """The bearer token: `token`, or the first line of `token_file`; "" when neither is set.
    ConfigError naming the file when it cannot be read or holds no usable token."""
    if not settings.token_file:
        return settings.token
    path = Path(settings.token_file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(source, "http.token_file", f"cannot read {path}: {reason}") from None
    lines = text.splitlines()
    token = lines[0].strip() if lines else ""
    try:
        _token(token)
    except ValueError as exc:
        raise ConfigError(source, "http.token_file", f"{path}: {exc}") from None
    if not token:
        raise ConfigError(source, "http.token_file", f"{path} is empty")
    return token
