"""What the lab's DNS server saw: nsd's dnstap log, received over Frame Streams.

nsd (built with --enable-dnstap, as Debian builds it) sends one dnstap message per query it
received and per response it sent to a Unix socket. `Collector` listens there: it speaks the
bidirectional Frame Streams handshake (READY → ACCEPT → START ... STOP → FINISH), decodes each
data frame's protobuf `Dnstap` message (dnstap.proto) and keeps the events in order. `exchanges`
pairs queries with their responses, so the lab can print every query with its answer exactly as
the server logged it, with the address of the client that asked.

Everything read from the socket is treated as hostile: a frame longer than the limits, a
truncated varint, an unknown wire type or a control frame out of order ends that connection
with a `FrameError` recorded in `Collector.errors`, never the collector.

Frame Streams: https://github.com/farsightsec/fstrm (fstrm/control.h); dnstap:
https://dnstap.info (dnstap.proto).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

__all__ = [
    "CONTENT_TYPE",
    "Collector",
    "DNSEvent",
    "Exchange",
    "FrameError",
    "decode_dnstap",
    "encode_control",
    "exchanges",
    "read_frames",
]

CONTENT_TYPE = b"protobuf:dnstap.Dnstap"
CONTROL_MAX = 512  # fstrm: FSTRM_CONTROL_FRAME_LENGTH_MAX
DATA_MAX = 1 << 20  # a DNS message is at most 64 KiB; the protobuf around it is small
_U32 = struct.Struct("!I")


class Control(IntEnum):
    """Frame Streams control frame types (fstrm/control.h)."""

    ACCEPT = 1
    START = 2
    STOP = 3
    READY = 4
    FINISH = 5


FIELD_CONTENT_TYPE = 1


class MessageType(IntEnum):
    """dnstap.proto Message.Type: the two an authoritative server sends."""

    AUTH_QUERY = 1
    AUTH_RESPONSE = 2


class FrameError(ValueError):
    """The writer broke the Frame Streams protocol or sent a malformed dnstap message."""


def encode_control(kind: Control, content_type: bytes | None = CONTENT_TYPE) -> bytes:
    """One control frame with its escape: 0, length, type, then the content-type field."""
    body = _U32.pack(kind)
    if content_type is not None:
        body += _U32.pack(FIELD_CONTENT_TYPE) + _U32.pack(len(content_type)) + content_type
    return _U32.pack(0) + _U32.pack(len(body)) + body


def _parse_control(frame: bytes) -> tuple[Control, list[bytes]]:
    if len(frame) < 4:
        raise FrameError("control frame shorter than its type")
    try:
        kind = Control(_U32.unpack_from(frame)[0])
    except ValueError:
        raise FrameError(f"unknown control frame type {_U32.unpack_from(frame)[0]}") from None
    types: list[bytes] = []
    offset = 4
    while offset < len(frame):
        if offset + 8 > len(frame):
            raise FrameError("truncated control field")
        field, length = _U32.unpack_from(frame, offset)[0], _U32.unpack_from(frame, offset + 4)[0]
        offset += 8
        if offset + length > len(frame):
            raise FrameError("control field longer than its frame")
        if field == FIELD_CONTENT_TYPE:
            types.append(frame[offset : offset + length])
        offset += length
    return kind, types


def _read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = read(size - len(data))
        if not piece:
            raise FrameError(f"the stream ended inside a frame ({len(data)} of {size} octets)")
        data += piece
    return data


def read_frames(read: Callable[[int], bytes], write: Callable[[bytes], None]) -> Iterator[bytes]:
    """The data frames of one bidirectional Frame Streams connection, the handshake answered
    through `write`. Ends at STOP (after answering FINISH) or at a clean end of stream."""
    started = False
    while True:
        head = read(4)
        if not head:
            return  # a clean end between frames
        if len(head) < 4:
            head += _read_exact(read, 4 - len(head))
        length = _U32.unpack(head)[0]
        if length:
            if not started:
                raise FrameError("data frame before START")
            if length > DATA_MAX:
                raise FrameError(f"data frame of {length} octets (at most {DATA_MAX})")
            yield _read_exact(read, length)
            continue
        size = _U32.unpack(_read_exact(read, 4))[0]
        if size > CONTROL_MAX:
            raise FrameError(f"control frame of {size} octets (at most {CONTROL_MAX})")
        kind, types = _parse_control(_read_exact(read, size))
        if kind is Control.READY:
            if CONTENT_TYPE not in types:
                raise FrameError(f"writer offers {types!r}, not {CONTENT_TYPE!r}")
            write(encode_control(Control.ACCEPT))
        elif kind is Control.START:
            if types and CONTENT_TYPE not in types:
                raise FrameError(f"START for {types!r}")
            started = True
        elif kind is Control.STOP:
            write(encode_control(Control.FINISH, None))
            return
        else:
            raise FrameError(f"unexpected control frame {kind.name} from the writer")


# --- protobuf (proto2 wire format), just what dnstap.proto needs -----------------------------


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data):
            raise FrameError("truncated varint")
        if shift > 63:
            raise FrameError("varint longer than 64 bits")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints and fixed ints as int, length-delimited as bytes."""
    offset = 0
    while offset < len(data):
        key, offset = _varint(data, offset)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise FrameError("field number 0")
        if wire == 0:
            value, offset = _varint(data, offset)
            yield number, value
        elif wire == 1:
            if offset + 8 > len(data):
                raise FrameError("truncated 64-bit field")
            yield number, int.from_bytes(data[offset : offset + 8], "little")
            offset += 8
        elif wire == 2:
            length, offset = _varint(data, offset)
            if offset + length > len(data):
                raise FrameError("length-delimited field past the end")
            yield number, data[offset : offset + length]
            offset += length
        elif wire == 5:
            if offset + 4 > len(data):
                raise FrameError("truncated 32-bit field")
            yield number, int.from_bytes(data[offset : offset + 4], "little")
            offset += 4
        else:
            raise FrameError(f"unsupported wire type {wire}")


@dataclass(frozen=True, slots=True)
class DNSEvent:
    """One dnstap message of an authoritative server: a query it received or its response."""

    kind: MessageType
    client: str  # the address that asked
    client_port: int
    time: float  # when the query arrived (queries) or the response left (responses)
    message: bytes  # the DNS message in wire format
    identity: str = ""


def _address(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    raise FrameError(f"address of {len(raw)} octets")


def decode_dnstap(frame: bytes) -> DNSEvent | None:
    """The event of one data frame, or None for a dnstap message of another kind (a resolver's
    messages, or a Dnstap without a Message)."""
    identity = b""
    body: bytes | None = None
    for number, value in _fields(frame):
        if number == 1 and isinstance(value, bytes):
            identity = value
        elif number == 14 and isinstance(value, bytes):
            body = value
    if body is None:
        return None
    values: dict[int, int | bytes] = {}
    for number, value in _fields(body):
        values[number] = value

    def number_of(field: int) -> int:
        value = values.get(field, 0)
        if not isinstance(value, int):
            raise FrameError(f"field {field} is not a number")
        return value

    def bytes_of(field: int) -> bytes:
        value = values.get(field, b"")
        if not isinstance(value, bytes):
            raise FrameError(f"field {field} is not a string")
        return value

    try:
        kind = MessageType(number_of(1))
    except ValueError:
        return None
    if kind is MessageType.AUTH_QUERY:
        seconds, nanos, message = number_of(8), number_of(9), bytes_of(10)
    else:
        seconds, nanos, message = number_of(12), number_of(13), bytes_of(14)
    if not message:
        raise FrameError(f"{kind.name} without its DNS message")
    return DNSEvent(
        kind=kind,
        client=_address(bytes_of(4)),
        client_port=number_of(6),
        time=seconds + nanos / 1e9,
        message=message,
        identity=identity.decode("utf-8", "replace"),
    )


# --- queries paired with answers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    """One query and the answer the server gave, in presentation format."""

    time: float
    client: str
    name: str  # the question's name, without the final dot
    rdtype: str  # "A", "TXT", ...
    rcode: str  # "NOERROR", "NXDOMAIN", "REFUSED", ... ("" when no response was logged)
    answers: tuple[str, ...]  # the answer section's data, one record a line

    def answer_text(self) -> str:
        if not self.rcode:
            return "(no answer logged)"
        if self.answers:
            return ", ".join(self.answers)
        return self.rcode if self.rcode != "NOERROR" else "NOERROR, no records (NODATA)"


def _question(wire: bytes) -> tuple[int, str, str, str, tuple[str, ...]] | None:
    try:
        message = dns.message.from_wire(wire, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError):
        return None
    if not message.question:
        return None
    question = message.question[0]
    answers = tuple(rdata.to_text() for rrset in message.answer for rdata in rrset)
    return (
        message.id,
        question.name.to_text(omit_final_dot=True).lower(),
        dns.rdatatype.to_text(question.rdtype),
        dns.rcode.to_text(message.rcode()),
        answers,
    )


def _names(event: DNSEvent) -> str:
    parsed = _question(event.message)
    return parsed[1] if parsed is not None else ""


def exchanges(events: list[DNSEvent]) -> list[Exchange]:
    """Queries paired with their responses (by client, port, id and question), in the order
    the queries arrived; a response whose query was not logged stands alone."""
    out: list[Exchange] = []
    pending: dict[tuple[str, int, int, str, str], int] = {}
    for event in events:
        parsed = _question(event.message)
        if parsed is None:
            continue
        ident, name, rdtype, rcode, answers = parsed
        key = (event.client, event.client_port, ident, name, rdtype)
        if event.kind is MessageType.AUTH_QUERY:
            pending[key] = len(out)
            out.append(Exchange(event.time, event.client, name, rdtype, "", ()))
            continue
        index = pending.pop(key, None)
        if index is None:
            out.append(Exchange(event.time, event.client, name, rdtype, rcode, answers))
        else:
            query = out[index]
            out[index] = Exchange(query.time, query.client, name, rdtype, rcode, answers)
    return out


# --- the listener --------------------------------------------------------------------------------


class Collector:
    """Listens on a Unix socket for nsd's dnstap connection; keeps every event in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[DNSEvent] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        os.chmod(path, 0o666)  # nsd's collector may run as another user
        self._server.listen(4)
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="dnstap", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                for frame in read_frames(conn.recv, conn.sendall):
                    event = decode_dnstap(frame)
                    if event is not None:
                        with self._arrived:
                            self.events.append(event)
                            self._arrived.notify_all()
            except (FrameError, OSError) as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def snapshot(self) -> list[DNSEvent]:
        with self._lock:
            return list(self.events)

    def wait_for(self, name: str, timeout: float = 10.0) -> bool:
        """Wait until a response for `name` was logged. nsd's collector forwards events in
        batches, a moment after the answers left, but in order: once the answer to a query
        sent last arrived, every earlier one has."""
        wanted = name.lower().rstrip(".")
        deadline = time.monotonic() + timeout
        seen = 0
        with self._arrived:
            while True:
                for event in self.events[seen:]:
                    if event.kind is MessageType.AUTH_RESPONSE and _names(event) == wanted:
                        return True
                seen = len(self.events)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._arrived.wait(remaining)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
