"""SASL for SMTP AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN mechanisms, parsed strictly.

Pure parsing, no I/O: the server reads the client's lines and hands them here. Every function
returns a value or raises `SASLError` with the reply to send. What is refused: responses that
are not strict base64 (no whitespace, no junk after padding), PLAIN messages without exactly
two NULs, an empty authentication identity or password, identities or passwords longer than
255 octets or not UTF-8, NUL or control characters in an identity, and an authorization
identity other than the authentication identity (we act for nobody else).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from enum import StrEnum

from .hooks import Reply

__all__ = [
    "LOGIN_PASSWORD",
    "LOGIN_USERNAME",
    "MAX_FIELD",
    "MAX_RESPONSE",
    "Credentials",
    "Mechanism",
    "SASLCancelled",
    "SASLError",
    "decode_response",
    "parse_auth_command",
    "parse_login_field",
    "parse_plain",
]

MAX_FIELD = 255  # RFC 4616 §2: authzid, authcid and passwd are at most 255 octets each
# base64 of a PLAIN message with three fields at their limit (3 * 255 + 2 octets)
MAX_RESPONSE = 4 * ((3 * MAX_FIELD + 2 + 2) // 3)
LOGIN_USERNAME = "VXNlcm5hbWU6"  # base64 "Username:" (draft-murchison-sasl-login)
LOGIN_PASSWORD = "UGFzc3dvcmQ6"  # base64 "Password:"

_CANCELLED = Reply(501, "5.7.0", "Authentication cancelled")
_BAD_BASE64 = Reply(501, "5.5.2", "Cannot decode the response (base64)")
_INVALID = Reply(535, "5.7.8", "Authentication credentials invalid")


class Mechanism(StrEnum):
    """The SASL mechanisms offered (only inside TLS: both send the password in clear)."""

    PLAIN = "PLAIN"
    LOGIN = "LOGIN"


class SASLError(ValueError):
    """A response that cannot be accepted, with the reply to send."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class SASLCancelled(SASLError):
    """The client sent "*" (RFC 4954 §4): the exchange ends with 501 5.7.0."""

    def __init__(self) -> None:
        super().__init__(_CANCELLED)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client claimed. The password never shows in a repr or a log."""

    mechanism: Mechanism
    username: str  # the authentication identity (authcid)
    password: str = field(repr=False)


def parse_auth_command(arg: str) -> tuple[Mechanism, str | None]:
    """`AUTH mechanism [initial-response]` (RFC 4954 §4): the mechanism and the initial
    response as sent (None when absent). Unknown mechanisms get 504 5.5.4."""
    parts = arg.split(" ")
    if not arg or len(parts) > 2 or not parts[0]:
        raise SASLError(Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"))
    try:
        mechanism = Mechanism(parts[0].upper())
    except ValueError:
        raise SASLError(Reply(504, "5.5.4", "Unrecognized authentication type")) from None
    initial = parts[1] if len(parts) == 2 else None
    if initial == "":
        raise SASLError(Reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"))
    return mechanism, initial


def decode_response(text: str) -> bytes:
    """A client response line: "*" cancels, "=" is an empty initial response (RFC 4954 §4),
    anything else must be strict base64 of at most MAX_RESPONSE characters."""
    if text == "*":
        raise SASLCancelled
    if text == "=":
        return b""
    if len(text) > MAX_RESPONSE:
        raise SASLError(Reply(500, "5.5.6", "Authentication exchange line is too long"))
    if not text or not text.isascii() or len(text) % 4:
        raise SASLError(_BAD_BASE64)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASLError(_BAD_BASE64) from None


def _text(data: bytes, *, identity: bool) -> str:
    """One field: UTF-8, 1 to 255 octets, no NUL (RFC 4616 §2); identities no controls."""
    if not data or len(data) > MAX_FIELD or b"\x00" in data:
        raise SASLError(_INVALID)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError(_INVALID) from None
    if identity and not text.isprintable():
        raise SASLError(_INVALID)
    return text


def parse_plain(message: bytes) -> Credentials:
    """RFC 4616 §2: `[authzid] NUL authcid NUL passwd`. An authorization identity, when
    given, must equal the authentication identity (we never act on behalf of another)."""
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise SASLError(_INVALID)
    authzid, authcid, passwd = parts
    username = _text(authcid, identity=True)
    password = _text(passwd, identity=False)
    if authzid and _text(authzid, identity=True) != username:
        raise SASLError(Reply(535, "5.7.8", "Authorization identity not permitted"))
    return Credentials(Mechanism.PLAIN, username, password)


def parse_login_field(data: bytes, *, identity: bool) -> str:
    """One LOGIN response: the user name or the password, decoded."""
    return _text(data, identity=identity)
