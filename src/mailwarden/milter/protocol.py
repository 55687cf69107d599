"""The Sendmail/Postfix milter protocol, version 6: packets, commands and responses.

There is no RFC; the de-facto specification is libmilter's `include/libmilter/mfdef.h`
(sendmail 8.14+, command and response codes, SMFIF_* actions, SMFIP_* protocol steps),
`libmilter/engine.c` (what each command carries) and Postfix's `src/milter/milter8.c` (what
Postfix sends and accepts). A packet is a 4-octet big-endian length, then one command octet,
then `length - 1` octets of data. Strings are NUL-terminated; integers are big-endian.

This module is pure: bytes in, typed values out, and back. `PacketReader` frames a byte
stream with a length cap; `decode_command` / `encode_command` are the MTA side's packets,
`decode_response` / `encode_response` the filter's. Every malformed input raises
`ProtocolError` (never anything else), so a server can close the connection and carry on.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "MAX_PACKET",
    "VERSION",
    "Abort",
    "Accept",
    "Action",
    "AddHeader",
    "Body",
    "BodyEnd",
    "ChangeHeader",
    "Command",
    "Connect",
    "Continue",
    "Data",
    "Discard",
    "EndOfHeaders",
    "Family",
    "Header",
    "Helo",
    "InsertHeader",
    "Macro",
    "Mail",
    "OptionNegotiation",
    "PacketReader",
    "Progress",
    "Protocol",
    "ProtocolError",
    "Quarantine",
    "Quit",
    "QuitNewConnection",
    "Rcpt",
    "Reject",
    "ReplyCode",
    "Response",
    "Skip",
    "Stage",
    "Tempfail",
    "Unknown",
    "decode_command",
    "decode_response",
    "encode_command",
    "encode_packet",
    "encode_response",
    "reply_text",
]

VERSION = 6  # SMFI_PROT_VERSION
# libmilter's MILTER_MAX_DATA_SIZE is 64 KiB by default (SMFIP_MDS_256K / _1M raise it); the
# longest command Postfix sends is a body chunk of that size. We never ask for more, so a
# length beyond this cap (a macro packet with many values stays far below) is refused.
MAX_PACKET = (1 << 20) + 64


class ProtocolError(ValueError):
    """A packet that does not follow the protocol (the connection is closed)."""


class Action(enum.IntFlag):
    """SMFIF_*: what the filter may do to the message at the end of it (mfdef.h)."""

    ADDHDRS = 0x01
    CHGBODY = 0x02
    ADDRCPT = 0x04
    DELRCPT = 0x08
    CHGHDRS = 0x10
    QUARANTINE = 0x20
    CHGFROM = 0x40
    ADDRCPT_PAR = 0x80
    SETSYMLIST = 0x100


class Protocol(enum.IntFlag):
    """SMFIP_*: the steps the MTA may leave out (NO*), commands the filter does not answer
    (NR_*), and wire details (mfdef.h)."""

    NOCONNECT = 0x01
    NOHELO = 0x02
    NOMAIL = 0x04
    NORCPT = 0x08
    NOBODY = 0x10
    NOHDRS = 0x20
    NOEOH = 0x40
    NR_HDR = 0x80  # SMFIP_NOHREPL
    NOUNKNOWN = 0x100
    NODATA = 0x200
    SKIP = 0x400  # the MTA understands SMFIR_SKIP
    RCPT_REJ = 0x800  # send rejected recipients too
    NR_CONN = 0x1000
    NR_HELO = 0x2000
    NR_MAIL = 0x4000
    NR_RCPT = 0x8000
    NR_DATA = 0x10000
    NR_UNKN = 0x20000
    NR_EOH = 0x40000
    NR_BODY = 0x80000
    HDR_LEADSPC = 0x100000  # header values keep their leading space
    MDS_256K = 0x10000000
    MDS_1M = 0x20000000


class Stage(enum.IntEnum):
    """SMFIM_*: the stages a macro list can be set for (SMFIR_SETSYMLIST, mfdef.h)."""

    CONNECT = 0
    HELO = 1
    ENVFROM = 2
    ENVRCPT = 3
    DATA = 4
    EOM = 5
    EOH = 6


class Family(enum.StrEnum):
    """SMFIA_*: the client address family in SMFIC_CONNECT."""

    UNKNOWN = "U"
    UNIX = "L"
    INET = "4"
    INET6 = "6"


# ---- commands: what the MTA sends --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptionNegotiation:
    """SMFIC_OPTNEG / SMFIR_OPTNEG ('O'): version, actions, protocol steps; the filter's
    answer may add macro lists per stage (with SMFIF_SETSYMLIST)."""

    version: int
    actions: Action
    protocol: Protocol
    macros: Mapping[Stage, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Macro:
    """SMFIC_MACRO ('D'): macros for the command `command` that follows."""

    command: str
    values: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Connect:
    """SMFIC_CONNECT ('C'): the client's name, family, port and address (or socket path)."""

    hostname: str
    family: Family
    port: int = 0
    address: str = ""


@dataclass(frozen=True, slots=True)
class Helo:
    name: str


@dataclass(frozen=True, slots=True)
class Mail:
    """SMFIC_MAIL ('M'): the reverse path (with its angle brackets) and ESMTP parameters."""

    sender: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rcpt:
    recipient: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class EndOfHeaders:
    pass


@dataclass(frozen=True, slots=True)
class Body:
    chunk: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    """SMFIC_BODYEOB ('E'): the end of the message (libmilter accepts a last chunk in it)."""

    chunk: bytes = b""


@dataclass(frozen=True, slots=True)
class Abort:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class QuitNewConnection:
    """SMFIC_QUIT_NC ('K'): this SMTP session is over, another follows on the same socket."""


@dataclass(frozen=True, slots=True)
class Data:
    pass


@dataclass(frozen=True, slots=True)
class Unknown:
    """SMFIC_UNKNOWN ('U'): an SMTP command the MTA does not know."""

    command: str


Command = (
    OptionNegotiation
    | Macro
    | Connect
    | Helo
    | Mail
    | Rcpt
    | Header
    | EndOfHeaders
    | Body
    | BodyEnd
    | Abort
    | Quit
    | QuitNewConnection
    | Data
    | Unknown
)

# ---- responses: what the filter sends -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Continue:
    pass


@dataclass(frozen=True, slots=True)
class Accept:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    pass


@dataclass(frozen=True, slots=True)
class Tempfail:
    pass


@dataclass(frozen=True, slots=True)
class Discard:
    pass


@dataclass(frozen=True, slots=True)
class ReplyCode:
    """SMFIR_REPLYCODE ('y'): the whole SMTP reply, possibly multi-line (see `reply_text`)."""

    text: str


@dataclass(frozen=True, slots=True)
class AddHeader:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class InsertHeader:
    """SMFIR_INSHEADER ('i'): insert before the `index`-th field (0: at the top)."""

    index: int
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class ChangeHeader:
    """SMFIR_CHGHEADER ('m'): change the `index`-th occurrence (from 1) of field `name`;
    an empty value removes it."""

    index: int
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Quarantine:
    reason: str


@dataclass(frozen=True, slots=True)
class Skip:
    """SMFIR_SKIP ('s'): send no more body chunks (only with SMFIP_SKIP)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """SMFIR_PROGRESS ('p'): still working; the MTA restarts its timer."""


Response = (
    OptionNegotiation
    | Continue
    | Accept
    | Reject
    | Tempfail
    | Discard
    | ReplyCode
    | AddHeader
    | InsertHeader
    | ChangeHeader
    | Quarantine
    | Skip
    | Progress
)

_EMPTY_COMMANDS: dict[bytes, Command] = {
    b"N": EndOfHeaders(),
    b"A": Abort(),
    b"Q": Quit(),
    b"K": QuitNewConnection(),
    b"T": Data(),
}
_EMPTY_RESPONSES: dict[bytes, Response] = {
    b"c": Continue(),
    b"a": Accept(),
    b"r": Reject(),
    b"t": Tempfail(),
    b"d": Discard(),
    b"s": Skip(),
    b"p": Progress(),
}

# ---- framing ------------------------------------------------------------------------------


def encode_packet(code: bytes, data: bytes = b"") -> bytes:
    if len(code) != 1:
        raise ProtocolError("a command code is one octet")
    if len(data) + 1 > MAX_PACKET:
        raise ProtocolError("packet too long")
    return struct.pack(">I", len(data) + 1) + code + data


class PacketReader:
    """Frames a byte stream into (code, data) packets; `max_length` caps each packet."""

    def __init__(self, max_length: int = MAX_PACKET) -> None:
        self.max_length = max_length
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Add `data`; yield every complete packet. Raises ProtocolError for a length of 0
        or beyond the cap (before buffering the data it announces)."""
        self._buffer += data
        while len(self._buffer) >= 4:
            (length,) = struct.unpack_from(">I", self._buffer)
            if length == 0:
                raise ProtocolError("empty packet")
            if length > self.max_length:
                raise ProtocolError(f"packet of {length} octets (limit {self.max_length})")
            if len(self._buffer) < 4 + length:
                return
            packet = bytes(self._buffer[4 : 4 + length])
            del self._buffer[: 4 + length]
            yield packet[:1], packet[1:]

    @property
    def pending(self) -> int:
        return len(self._buffer)


# ---- field helpers ------------------------------------------------------------------------


def _text(data: bytes) -> str:
    # Header values and addresses may carry 8-bit octets (RFC 6532); keep them reversibly.
    return data.decode("utf-8", "surrogateescape")


def _bytes(text: str) -> bytes:
    encoded = text.encode("utf-8", "surrogateescape")
    if b"\x00" in encoded:
        raise ProtocolError("a string field cannot hold NUL")
    return encoded


def _strings(data: bytes, count: int | None = None) -> list[str]:
    """NUL-terminated strings; exactly `count` of them when given."""
    if not data.endswith(b"\x00"):
        raise ProtocolError("string not NUL-terminated")
    parts = [_text(part) for part in data[:-1].split(b"\x00")]
    if count is not None and len(parts) != count:
        raise ProtocolError(f"expected {count} strings, got {len(parts)}")
    return parts


def _uint32(data: bytes, offset: int = 0) -> int:
    if len(data) < offset + 4:
        raise ProtocolError("truncated integer")
    value: int = struct.unpack_from(">I", data, offset)[0]
    return value


def _optneg(data: bytes) -> OptionNegotiation:
    if len(data) < 12:
        raise ProtocolError("option negotiation needs 12 octets")
    version, actions, protocol = struct.unpack_from(">III", data)
    macros: dict[Stage, str] = {}
    rest = data[12:]
    while rest:  # SMFIR_SETSYMLIST lists in the filter's answer: stage, then a string
        stage = _uint32(rest)
        end = rest.find(b"\x00", 4)
        if end < 0:
            raise ProtocolError("macro list not NUL-terminated")
        try:
            macros[Stage(stage)] = _text(rest[4:end])
        except ValueError:
            raise ProtocolError(f"unknown macro stage {stage}") from None
        rest = rest[end + 1 :]
    return OptionNegotiation(version, Action(actions), Protocol(protocol), macros)


def _encode_optneg(value: OptionNegotiation) -> bytes:
    data = struct.pack(">III", value.version, int(value.actions), int(value.protocol))
    for stage, names in value.macros.items():
        data += struct.pack(">I", int(stage)) + _bytes(names) + b"\x00"
    return data


# ---- commands -----------------------------------------------------------------------------


def decode_command(code: bytes, data: bytes) -> Command:
    """One MTA packet as a typed command. Raises ProtocolError."""
    if code in _EMPTY_COMMANDS:
        return _EMPTY_COMMANDS[code]  # libmilter ignores data after these; so do we
    if code == b"O":
        return _optneg(data)
    if code == b"D":
        if not data:
            raise ProtocolError("macro packet without a command")
        strings = _strings(data[1:]) if len(data) > 1 else []
        if len(strings) % 2:
            raise ProtocolError("macro name without a value")
        pairs = dict(zip(strings[::2], strings[1::2], strict=True))
        return Macro(_text(data[:1]), pairs)
    if code == b"C":
        end = data.find(b"\x00")
        if end < 0 or len(data) < end + 2:
            raise ProtocolError("truncated connect")
        hostname = _text(data[:end])
        try:
            family = Family(chr(data[end + 1]))
        except ValueError:
            raise ProtocolError("unknown address family") from None
        rest = data[end + 2 :]
        if family is Family.UNKNOWN:  # nothing follows (Postfix milter8.c)
            return Connect(hostname, family)
        if len(rest) < 3:
            raise ProtocolError("truncated connect address")
        (port,) = struct.unpack_from(">H", rest)
        (address,) = _strings(rest[2:], 1)
        return Connect(hostname, family, port, address)
    if code == b"H":
        return Helo(_strings(data, 1)[0])
    if code in (b"M", b"R"):
        args = _strings(data)
        if code == b"M":
            return Mail(args[0], tuple(args[1:]))
        return Rcpt(args[0], tuple(args[1:]))
    if code == b"L":
        name, value = _strings(data, 2)
        return Header(name, value)
    if code == b"B":
        return Body(data)
    if code == b"E":
        return BodyEnd(data)
    if code == b"U":
        return Unknown(_strings(data, 1)[0])
    raise ProtocolError(f"unknown command {code!r}")


def encode_command(command: Command) -> bytes:
    """The packet the MTA sends for `command` (the client side, and tests)."""
    match command:
        case OptionNegotiation():
            return encode_packet(b"O", _encode_optneg(command))
        case Macro(target, values):
            if len(target.encode()) != 1:
                raise ProtocolError("a macro packet names one command octet")
            body = b"".join(_bytes(k) + b"\x00" + _bytes(v) + b"\x00" for k, v in values.items())
            return encode_packet(b"D", target.encode() + body)
        case Connect(hostname, family, port, address):
            data = _bytes(hostname) + b"\x00" + family.value.encode()
            if family is not Family.UNKNOWN:
                data += struct.pack(">H", port) + _bytes(address) + b"\x00"
            return encode_packet(b"C", data)
        case Helo(name):
            return encode_packet(b"H", _bytes(name) + b"\x00")
        case Mail(sender, args) | Rcpt(sender, args):
            op = b"M" if isinstance(command, Mail) else b"R"
            return encode_packet(op, b"".join(_bytes(a) + b"\x00" for a in (sender, *args)))
        case Header(name, value):
            return encode_packet(b"L", _bytes(name) + b"\x00" + _bytes(value) + b"\x00")
        case Body(chunk):
            return encode_packet(b"B", chunk)
        case BodyEnd(chunk):
            return encode_packet(b"E", chunk)
        case Unknown(text):
            return encode_packet(b"U", _bytes(text) + b"\x00")
    for op, empty in _EMPTY_COMMANDS.items():
        if command == empty:
            return encode_packet(op)
    raise ProtocolError(f"not a command: {command!r}")


# ---- responses ----------------------------------------------------------------------------


def decode_response(code: bytes, data: bytes) -> Response:
    """One filter packet as a typed response (the client side). Raises ProtocolError."""
    if code in _EMPTY_RESPONSES:
        return _EMPTY_RESPONSES[code]
    if code == b"O":
        return _optneg(data)
    if code == b"y":
        return ReplyCode(_strings(data, 1)[0])
    if code == b"h":
        name, value = _strings(data, 2)
        return AddHeader(name, value)
    if code in (b"i", b"m"):
        index = _uint32(data)
        name, value = _strings(data[4:], 2)
        if code == b"i":
            return InsertHeader(index, name, value)
        return ChangeHeader(index, name, value)
    if code == b"q":
        return Quarantine(_strings(data, 1)[0])
    raise ProtocolError(f"unknown response {code!r}")


def encode_response(response: Response) -> bytes:
    """The packet the filter sends for `response`."""
    match response:
        case OptionNegotiation():
            return encode_packet(b"O", _encode_optneg(response))
        case ReplyCode(text):
            return encode_packet(b"y", _bytes(text) + b"\x00")
        case AddHeader(name, value):
            return encode_packet(b"h", _bytes(name) + b"\x00" + _bytes(value) + b"\x00")
        case InsertHeader(index, name, value) | ChangeHeader(index, name, value):
            op = b"i" if isinstance(response, InsertHeader) else b"m"
            data = struct.pack(">I", index) + _bytes(name) + b"\x00" + _bytes(value) + b"\x00"
            return encode_packet(op, data)
        case Quarantine(reason):
            return encode_packet(b"q", _bytes(reason) + b"\x00")
    for op, empty in _EMPTY_RESPONSES.items():
        if response == empty:
            return encode_packet(op)
    raise ProtocolError(f"not a response: {response!r}")


def reply_text(code: int, status: str, lines: Sequence[str]) -> str:
    """An SMTP reply for SMFIR_REPLYCODE: `code` and `status` on every line, continuation
    lines joined by CRLF as libmilter's smfi_setmlreply does. `%` is doubled (the MTA formats
    the text: Sendmail and Postfix both treat a lone `%` as a format character); CR, LF and
    NUL inside a line become spaces, so a line can never smuggle another reply."""
    if not 400 <= code <= 599:
        raise ValueError(f"reply code {code} is not a 4xx or 5xx")
    clean = [
        "".join(" " if ch in "\r\n\x00" else ch for ch in line).replace("%", "%%") for line in lines
    ] or [""]
    head = f"{status} " if status else ""
    last = len(clean) - 1
    return "\r\n".join(
        f"{code}{' ' if number == last else '-'}{head}{line}".rstrip()
        for number, line in enumerate(clean)
    )
