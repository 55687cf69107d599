"""What the lab tests share: the writer's side of Frame Streams and dnstap (the lab only reads
them), and the checks that make the whole lab run or say why it cannot run here."""

from __future__ import annotations

import shutil
import socket
import struct

import dns.message
import dns.rcode
import dns.rrset
from lab.dnstap import CONTENT_TYPE, Control, encode_control
from lab.netns import namespaces_available
from tests.testdata import unavailable

SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: int | bytes, *, fixed32: bool = False) -> bytes:
    """One protobuf field: a varint, a fixed32, or length-delimited bytes."""
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    if fixed32:
        return varint(number << 3 | 5) + struct.pack("<I", value)
    return varint(number << 3) + varint(value)


def dnstap_frame(
    kind: int,
    client: str,
    port: int,
    when: float,
    message: bytes,
    *,
    identity: bytes = b"ns.test",
) -> bytes:
    """A Dnstap protobuf as nsd writes it: AUTH_QUERY (1) or AUTH_RESPONSE (2)."""
    seconds, nanos = int(when), round((when - int(when)) * 1e9) % 1_000_000_000
    time_fields = (8, 9, 10) if kind == 1 else (12, 13, 14)
    body = (
        field(1, kind)
        + field(2, 1)  # INET
        + field(3, 1)  # UDP
        + field(4, socket.inet_pton(socket.AF_INET, client))
        + field(6, port)
        + field(time_fields[0], seconds)
        + field(time_fields[1], nanos, fixed32=True)
        + field(time_fields[2], message)
    )
    return field(1, identity) + field(14, body) + field(15, 1)


def data_frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def writer_stream(frames: list[bytes]) -> bytes:
    """What a well-behaved writer sends: READY, START, the data frames, STOP."""
    return (
        encode_control(Control.READY)
        + encode_control(Control.START)
        + b"".join(data_frame(f) for f in frames)
        + encode_control(Control.STOP, None)
    )


def query(name: str, rdtype: str, ident: int = 1) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype)
    message.id = ident
    return message


def answer(question: dns.message.Message, *records: str, rcode: str = "NOERROR") -> bytes:
    response = dns.message.make_response(question)
    response.set_rcode(dns.rcode.from_text(rcode))
    if records:
        name = question.question[0].name
        rdtype = question.question[0].rdtype
        response.answer.append(dns.rrset.from_text_list(name, 5, "IN", rdtype, list(records)))
    return response.to_wire()


def require_lab() -> None:
    """Root, `ip netns` and the programs the lab runs; otherwise skip (fail under CI)."""
    why = namespaces_available()
    if why is not None:
        unavailable(f"the lab cannot run here: {why}")
    for name in ("nsd", "postfix", "swaks"):
        if shutil.which(name, path=SEARCH_PATH) is None:
            unavailable(f"the lab needs {name} (`make system-deps` installs it)")


__all__ = [
    "CONTENT_TYPE",
    "answer",
    "data_frame",
    "dnstap_frame",
    "field",
    "query",
    "require_lab",
    "varint",
    "writer_stream",
]
