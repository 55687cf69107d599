"""The Postfix SMTPD access policy delegation protocol, read from a hostile peer.

Postfix's SMTPD_POLICY_README: a request is a block of `name=value` lines ending with an
empty line; the answer is one `action=...` line and an empty line; a connection carries many
requests, one after another. Postfix never sends anything else, but whoever can reach the
port can: every line and every block is bounded, a request must arrive whole within a
deadline once begun (a slow peer is cut off), unknown attributes are ignored, and a block that
is not a request (a line without `=`, a bad name, a NUL, a name twice, no `request=`) is
answered with a temporary refusal, never with a crash or an opening.

    request = await read_request(reader, limits)   # None: the peer closed between requests
    writer.write(format_answer("DUNNO"))
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "MALFORMED",
    "Limits",
    "PolicyRequest",
    "ProtocolError",
    "format_answer",
    "parse_block",
    "read_request",
]

# SMTPD_POLICY_README, "Protocol description": lowercase names of letters, digits and `_`
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
MAX_ACTION = 1000  # octets of one answer line: an SMTP reply line is at most 512 (RFC 5321)
# RFC 3463 X.3.5 (system incorrectly configured): what a peer that is not Postfix gets
MALFORMED = "DEFER_IF_PERMIT 4.3.5 malformed policy request"


class ProtocolError(Exception):
    """The peer cannot be understood any more (line or request too long, truncated, too
    slow): the connection is closed without an answer."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one peer may send (the `[policy_service]` settings)."""

    max_line: int = 8192  # octets of one line, its newline included
    max_attributes: int = 100  # lines in one request
    idle_timeout: float = 330.0  # seconds between requests
    read_timeout: float = 10.0  # seconds from a request's first octet to its empty line


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """One request. `problem` is set for a block that is not a usable request (it is
    answered MALFORMED); the attributes are those read, unknown ones included."""

    attributes: Mapping[str, str] = field(default_factory=dict)
    problem: str = ""

    def get(self, name: str) -> str:
        return self.attributes.get(name, "")

    @property
    def protocol_state(self) -> str:
        return self.get("protocol_state").upper()

    @property
    def client_address(self) -> str:
        return self.get("client_address")

    @property
    def helo_name(self) -> str:
        return self.get("helo_name")

    @property
    def sender(self) -> str:
        return self.get("sender")

    @property
    def recipient(self) -> str:
        return self.get("recipient")

    @property
    def sasl_username(self) -> str:
        return self.get("sasl_username")

    @property
    def instance(self) -> str:
        return self.get("instance")


def parse_block(lines: list[bytes]) -> PolicyRequest:
    """The request of one block's lines (each without its line ending)."""
    attributes: dict[str, str] = {}
    problem = ""
    for number, raw in enumerate(lines, 1):
        if b"\x00" in raw:
            problem = problem or f"line {number}: NUL octet"
            continue
        text = raw.decode("utf-8", "replace")
        name, sep, value = text.partition("=")
        if not sep:
            problem = problem or f"line {number}: no '='"
            continue
        if not _NAME.fullmatch(name):
            problem = problem or f"line {number}: bad attribute name {name[:40]!r}"
            continue
        if name in attributes:  # Postfix sends each once: two are an attempt to confuse
            problem = problem or f"line {number}: {name} twice"
            continue
        attributes[name] = value
    if not problem and not lines:
        problem = "empty request"
    if not problem and attributes.get("request") != "smtpd_access_policy":
        problem = f"request={attributes.get('request', '')[:40]!r}, not smtpd_access_policy"
    return PolicyRequest(attributes, problem)


async def read_request(reader: asyncio.StreamReader, limits: Limits) -> PolicyRequest | None:
    """The next request, or None when the peer closed cleanly between requests. Raises
    ProtocolError (close the connection) and TimeoutError (idle or slow peer). The reader's
    own buffer limit must be at least `limits.max_line`."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(limits.idle_timeout):
        first = await _line(reader, limits, first=True)
    if first is None:
        return None
    lines: list[bytes] = []
    deadline = loop.time() + limits.read_timeout
    line: bytes | None = first
    async with asyncio.timeout_at(deadline):
        while line:
            if len(lines) >= limits.max_attributes:
                raise ProtocolError(f"more than {limits.max_attributes} lines in one request")
            lines.append(line)
            line = await _line(reader, limits, first=False)
    return parse_block(lines)


async def _line(reader: asyncio.StreamReader, limits: Limits, *, first: bool) -> bytes | None:
    """One line without its ending (`\\n`, or `\\r\\n` from a hand-typed session); None at
    a clean end of input before a request."""
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if first and not exc.partial:
            return None
        raise ProtocolError("connection closed inside a request") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"a line longer than {limits.max_line} octets") from None
    if len(raw) > limits.max_line:
        raise ProtocolError(f"a line longer than {limits.max_line} octets")
    return raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]


def format_answer(action: str) -> bytes:
    """`action=...` and the empty line ending the answer. Control characters in `action`
    (from a DNS list's TXT or an SPF explanation) become spaces: one line, always."""
    clean = "".join(c if c.isprintable() else " " for c in action).strip()
    encoded = clean.encode("utf-8", "replace")[:MAX_ACTION]
    return b"action=" + encoded.decode("utf-8", "ignore").encode("utf-8") + b"\n\n"
