"""The `[milter]` section: the Postfix/Sendmail milter front end (`mailwarden milter`).

Postfix waits `milter_connect_timeout` (30 s) to connect, `milter_command_timeout` (30 s) for
each answer before the message content and `milter_content_timeout` (300 s) for the answers
about it; `command_timeout` and `content_timeout` here are those budgets (set them to what
main.cf says): every stage answers inside them, a check that cannot finish in time is cut
short before, and the answer says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailwarden.schema import InvalidSetting, setting

from .gateway import parse_hostport

__all__ = ["MilterSettings", "parse_listen"]


def parse_listen(text: object) -> str:
    """`host:port`, `[v6]:port`, or `unix:/absolute/path` (Postfix's `inet:` and `unix:`
    prefixes are accepted too). Raises ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"expected HOST:PORT or unix:/PATH, got {text!r}")
    text = text.strip()
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path.startswith("/") or "\x00" in path:
            raise ValueError(f"expected unix:/absolute/path, got {text!r}")
        if len(path.encode()) > 107:  # sun_path is 108 octets with its NUL
            raise ValueError(f"socket path too long: {text!r}")
        return text
    host, port = parse_hostport(text.removeprefix("inet:"), None)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class MilterSettings:
    """`[milter]`."""

    listen: str = setting("127.0.0.1:11332", convert=parse_listen)
    max_connections: int = setting(500, min=1)  # past it, new connections are closed at once
    command_timeout: float = setting(30.0, above=1, max=3600)  # milter_command_timeout
    content_timeout: float = setting(300.0, above=1, max=3600)  # milter_content_timeout

    def validate(self) -> None:
        if self.content_timeout < self.command_timeout:
            raise InvalidSetting(
                "content_timeout", "shorter than command_timeout (Postfix: 300 s and 30 s)"
            )
