"""The dnstap reader: the Frame Streams handshake, the protobuf decoder, queries paired with their
answers, and the collector on a real Unix socket, fed by a writer of ours and by a real nsd."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lab.dnstap import (
    Collector,
    Control,
    DNSEvent,
    FrameError,
    MessageType,
    decode_dnstap,
    encode_control,
    exchanges,
    read_frames,
)
from tests.dns.nsd import nsd_program, start_nsd
from tests.lab.helpers import (
    answer,
    data_frame,
    dnstap_frame,
    field,
    query,
    varint,
    writer_stream,
)
from tests.testdata import unavailable


def run_reader(stream: bytes) -> tuple[list[bytes], bytes]:
    """The data frames read from `stream`, and what the reader wrote back."""
    source = io.BytesIO(stream)
    written = bytearray()
    frames = list(read_frames(source.read, written.extend))
    return frames, bytes(written)


# -- Frame Streams ----------------------------------------------------------------------------


def test_handshake_answers_ready_with_accept_and_stop_with_finish() -> None:
    frames, written = run_reader(writer_stream([b"one", b"two"]))
    assert frames == [b"one", b"two"]
    assert written == encode_control(Control.ACCEPT) + encode_control(Control.FINISH, None)


def test_a_clean_end_of_stream_without_stop_ends_quietly() -> None:
    stream = encode_control(Control.READY) + encode_control(Control.START) + data_frame(b"x")
    assert run_reader(stream)[0] == [b"x"]


def _control(kind: int, body: bytes = b"") -> bytes:
    payload = struct.pack("!I", kind) + body
    return struct.pack("!II", 0, len(payload)) + payload


READY = encode_control(Control.READY)
START = encode_control(Control.START)


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (READY + data_frame(b"early"), "before START"),
        (data_frame(b"no handshake"), "before START"),
        (encode_control(Control.READY, b"protobuf:other"), "not b'protobuf:dnstap"),
        (READY + encode_control(Control.START, b"protobuf:other"), "START for"),
        (_control(9), "unknown control frame type 9"),
        (_control(Control.ACCEPT), "unexpected control frame ACCEPT"),
        (_control(Control.FINISH), "unexpected control frame FINISH"),
        (struct.pack("!II", 0, 513) + b"\0" * 513, "control frame of 513"),
        (struct.pack("!II", 0, 2) + b"\0\0", "shorter than its type"),
        (_control(Control.READY, struct.pack("!II", 1, 50) + b"short"), "longer than its frame"),
        (_control(Control.READY, b"\0\0\0\1\0"), "truncated control field"),
        (READY + START + struct.pack("!I", (1 << 20) + 1), "data frame of 1048577"),
    ],
)
def test_a_writer_breaking_the_protocol_is_a_frame_error(stream: bytes, error: str) -> None:
    with pytest.raises(FrameError, match=error):
        run_reader(stream)


def test_a_stream_cut_between_frames_ends_and_inside_one_fails() -> None:
    pieces = [READY, START, data_frame(b"a" * 10), data_frame(b"b" * 10)]
    boundaries = {sum(len(p) for p in pieces[:n]): n for n in range(len(pieces) + 1)}
    stream = b"".join(pieces)
    for cut in range(1, len(stream)):
        if cut in boundaries:
            frames, _ = run_reader(stream[:cut])
            assert frames == [b"a" * 10, b"b" * 10][: max(0, boundaries[cut] - 2)]
        else:
            with pytest.raises(FrameError, match="ended inside a frame"):
                run_reader(stream[:cut])


@given(st.binary(max_size=300))
def test_any_bytes_give_frames_or_a_clean_error(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        run_reader(data)


# -- dnstap messages ------------------------------------------------------------------------


def test_a_response_decodes_to_its_client_time_and_message() -> None:
    wire = answer(query("a.example", "TXT", 7), '"v=spf1 -all"')
    event = decode_dnstap(dnstap_frame(2, "10.99.2.25", 40000, 1700000000.25, wire))
    assert event == DNSEvent(
        MessageType.AUTH_RESPONSE, "10.99.2.25", 40000, 1700000000.25, wire, "ns.test"
    )


def test_a_query_takes_the_query_time_and_message() -> None:
    wire = query("a.example", "MX").to_wire()
    event = decode_dnstap(dnstap_frame(1, "10.99.1.25", 5353, 12.5, wire))
    assert event is not None
    assert (event.kind, event.time, event.message) == (MessageType.AUTH_QUERY, 12.5, wire)


@pytest.mark.parametrize(
    "frame",
    [
        field(1, b"identity only"),  # a Dnstap without a Message
        field(14, field(1, 5) + field(14, b"x")),  # a resolver's message type
        field(14, field(1, 0) + field(14, b"x")),  # no type at all
    ],
)
def test_messages_of_other_kinds_are_skipped(frame: bytes) -> None:
    assert decode_dnstap(frame) is None


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"\x80", "truncated varint"),
        (b"\xff" * 11, "longer than 64 bits"),
        (varint(0 << 3), "field number 0"),
        (varint(14 << 3 | 2) + varint(50) + b"short", "past the end"),
        (varint(14 << 3 | 3), "wire type 3"),
        (varint(1 << 3 | 1) + b"\0\0", "truncated 64-bit"),
        (varint(1 << 3 | 5) + b"\0", "truncated 32-bit"),
        (field(14, field(1, 2)), "without its DNS message"),
        (field(14, field(1, 2) + field(4, b"\1\2\3") + field(14, b"x")), "address of 3"),
        (field(14, field(1, 2) + field(12, b"text") + field(14, b"x")), "not a number"),
        (field(14, field(1, 2) + field(14, 5)), "not a string"),
    ],
)
def test_malformed_messages_are_frame_errors(frame: bytes, error: str) -> None:
    with pytest.raises(FrameError, match=error):
        decode_dnstap(frame)


@given(
    kind=st.sampled_from([1, 2]),
    client=st.ip_addresses(v=4).map(str),
    port=st.integers(0, 65535),
    when=st.integers(0, 2**40).map(lambda n: n / 1000),
    message=st.binary(min_size=1, max_size=600),
)
def test_any_message_round_trips(
    kind: int, client: str, port: int, when: float, message: bytes
) -> None:
    event = decode_dnstap(dnstap_frame(kind, client, port, when, message))
    assert event is not None
    assert (event.kind, event.client, event.client_port, event.message) == (
        kind,
        client,
        port,
        message,
    )
    assert abs(event.time - when) < 1e-6


@given(st.binary(max_size=400))
def test_any_bytes_decode_or_fail_with_a_frame_error(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_dnstap(data)


# -- queries and answers ----------------------------------------------------------------------


def _event(kind: int, client: str, port: int, when: float, wire: bytes) -> DNSEvent:
    return DNSEvent(MessageType(kind), client, port, when, wire)


def test_queries_are_paired_with_their_responses() -> None:
    ptr = query("25.1.99.10.in-addr.arpa", "PTR", 1)
    txt = query("_dmarc.a.example", "TXT", 2)
    missing = query("6.66.99.10.bl.example", "A", 3)
    events = [
        _event(1, "10.99.2.25", 1000, 1.0, ptr.to_wire()),
        _event(1, "10.99.2.25", 1001, 1.1, txt.to_wire()),
        _event(2, "10.99.2.25", 1001, 1.2, answer(txt, '"v=DMARC1; p=reject"')),
        _event(2, "10.99.2.25", 1000, 1.3, answer(ptr, "mail.a.example.")),
        _event(1, "10.99.2.25", 1002, 1.4, missing.to_wire()),
        _event(2, "10.99.2.25", 1002, 1.5, answer(missing, rcode="NXDOMAIN")),
    ]
    found = exchanges(events)
    assert [(e.time, e.name, e.rdtype, e.rcode, e.answers) for e in found] == [
        (1.0, "25.1.99.10.in-addr.arpa", "PTR", "NOERROR", ("mail.a.example.",)),
        (1.1, "_dmarc.a.example", "TXT", "NOERROR", ('"v=DMARC1; p=reject"',)),
        (1.4, "6.66.99.10.bl.example", "A", "NXDOMAIN", ()),
    ]
    assert [e.answer_text() for e in found][2] == "NXDOMAIN"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # a response whose query was not logged stands alone
        ([(2, 1000, "q")], [("NOERROR", ("192.0.2.1",))]),
        # a query never answered says so
        ([(1, 1000, "q")], [("", ())]),
        # the same id from another port is another query
        ([(1, 1000, "q"), (2, 1001, "q")], [("", ()), ("NOERROR", ("192.0.2.1",))]),
    ],
)
def test_unpaired_events_are_kept(
    events: list[tuple[int, int, str]], expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    question = query("x.example", "A", 9)
    wires = {1: question.to_wire(), 2: answer(question, "192.0.2.1")}
    built = [_event(kind, "10.0.0.1", port, 1.0, wires[kind]) for kind, port, _ in events]
    assert [(e.rcode, e.answers) for e in exchanges(built)] == expected


def test_unreadable_dns_messages_are_skipped() -> None:
    events = [_event(2, "10.0.0.1", 1, 1.0, b"\x00\x01garbage"), _event(2, "10.0.0.1", 1, 1.0, b"")]
    assert exchanges(events) == []


def test_answer_text_for_nodata_and_silence() -> None:
    question = query("a.example", "AAAA")
    [nodata] = exchanges([_event(2, "10.0.0.1", 1, 1.0, answer(question))])
    assert nodata.answer_text() == "NOERROR, no records (NODATA)"
    [silent] = exchanges([_event(1, "10.0.0.1", 1, 1.0, question.to_wire())])
    assert silent.answer_text() == "(no answer logged)"


# -- the collector ----------------------------------------------------------------------------


@pytest.fixture
def collector() -> Iterator[Collector]:
    folder = Path(tempfile.mkdtemp(prefix="dnstap-"))
    found = Collector(folder / "dnstap.sock")
    try:
        yield found
    finally:
        found.close()
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def _write(path: Path, data: bytes, *, read_back: int = 0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(data)
        received = b""
        while len(received) < read_back:
            piece = sock.recv(4096)
            if not piece:
                break
            received += piece
        return received


def test_the_collector_keeps_events_from_a_writer(collector: Collector) -> None:
    question = query("end-of-test.example", "TXT", 3)
    frames = [
        dnstap_frame(1, "10.0.0.2", 53000, 5.0, question.to_wire()),
        dnstap_frame(2, "10.0.0.2", 53000, 5.1, answer(question, rcode="NXDOMAIN")),
    ]
    finish = len(encode_control(Control.FINISH, None))
    back = _write(
        collector.path,
        writer_stream(frames),
        read_back=len(encode_control(Control.ACCEPT)) + finish,
    )
    assert back.endswith(encode_control(Control.FINISH, None))
    assert collector.wait_for("end-of-test.example", timeout=5)
    assert [e.kind for e in collector.snapshot()] == [
        MessageType.AUTH_QUERY,
        MessageType.AUTH_RESPONSE,
    ]


def test_a_hostile_writer_is_dropped_and_the_next_one_is_heard(collector: Collector) -> None:
    _write(collector.path, READY + data_frame(b"not started"), read_back=1)
    _write(collector.path, b"\x00\x00\x00\x00\xff\xff\xff\xff", read_back=1)
    question = query("after.example", "A")
    good = writer_stream([dnstap_frame(2, "10.0.0.3", 1, 1.0, answer(question))])
    # a well-behaved writer reads the collector's FINISH before it closes (closing earlier
    # races the collector's write and shows up as a broken pipe, a third error)
    whole = len(encode_control(Control.ACCEPT)) + len(encode_control(Control.FINISH, None))
    back = _write(collector.path, good, read_back=whole)
    assert back.endswith(encode_control(Control.FINISH, None))
    assert collector.wait_for("after.example", timeout=5)
    assert len(collector.errors) == 2
    assert all("FrameError" in error for error in collector.errors)


def test_wait_for_gives_up(collector: Collector) -> None:
    assert not collector.wait_for("never.example", timeout=0.1)


def test_the_collector_hears_a_real_nsd(tmp_path: Path) -> None:
    """nsd (Debian builds it with dnstap) logs each query and answer; what the collector
    decodes is what the client was told."""
    if nsd_program() is None:
        unavailable("nsd is not installed (Debian package nsd)")
    folder = Path(tempfile.mkdtemp(prefix="dnstap-nsd-"))  # a short path for the socket
    collector = Collector(folder / "dnstap.sock")
    extra = f"""\
dnstap:
    dnstap-enable: yes
    dnstap-socket-path: "{folder / "dnstap.sock"}"
    dnstap-log-auth-query-messages: yes
    dnstap-log-auth-response-messages: yes
"""
    zone = (
        "$ORIGIN tap.example.\n$TTL 5\n"
        "@ SOA ns.tap.example. h.tap.example. 1 3600 600 86400 5\n@ NS ns\nns A 127.0.0.1\n"
        '@ TXT "v=spf1 -all"\n'
    )
    try:
        server = start_nsd(tmp_path / "nsd", {"tap.example": zone}, extra=extra)
    except RuntimeError as exc:
        collector.close()
        pytest.fail(str(exc))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            for name in ("tap.example", "missing.tap.example"):
                message = query(name, "TXT", 77)
                sock.sendto(message.to_wire(), ("127.0.0.1", server.port))
                sock.recv(4096)
        assert collector.wait_for("missing.tap.example", timeout=10), collector.errors
        found = [e for e in exchanges(collector.snapshot()) if e.name.endswith("tap.example")]
        assert [(e.client, e.name, e.rdtype, e.rcode, e.answers) for e in found][-2:] == [
            ("127.0.0.1", "tap.example", "TXT", "NOERROR", ('"v=spf1 -all"',)),
            ("127.0.0.1", "missing.tap.example", "TXT", "NXDOMAIN", ()),
        ]
        assert collector.errors == []
    finally:
        server.stop()
        collector.close()
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
