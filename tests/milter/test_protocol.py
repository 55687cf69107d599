"""The milter codec: every command and response round-trips; hostile bytes raise
ProtocolError and nothing else."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.milter import protocol as p

text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)
names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
    min_size=1,
    max_size=20,
)
uint32 = st.integers(0, 2**32 - 1)

commands = st.one_of(
    st.builds(
        p.OptionNegotiation,
        st.integers(0, 2**32 - 1),
        st.builds(p.Action, st.integers(0, 0x1FF)),
        st.builds(p.Protocol, st.integers(0, 0x1FFFFF)),
    ),
    st.builds(
        p.Macro,
        st.sampled_from("CHMRTLNEBU"),
        st.dictionaries(text, text, max_size=5),
    ),
    st.builds(p.Connect, text, st.sampled_from([p.Family.UNKNOWN]), st.just(0), st.just("")),
    st.builds(
        p.Connect,
        text,
        st.sampled_from([p.Family.INET, p.Family.INET6, p.Family.UNIX]),
        st.integers(0, 65535),
        text,
    ),
    st.builds(p.Helo, text),
    st.builds(p.Mail, text, st.lists(text, max_size=3).map(tuple)),
    st.builds(p.Rcpt, text, st.lists(text, max_size=3).map(tuple)),
    st.builds(p.Header, text, text),
    st.builds(p.Body, st.binary(max_size=200)),
    st.builds(p.BodyEnd, st.binary(max_size=20)),
    st.builds(p.Unknown, text),
    st.sampled_from([p.EndOfHeaders(), p.Abort(), p.Quit(), p.QuitNewConnection(), p.Data()]),
)

responses = st.one_of(
    st.builds(
        p.OptionNegotiation,
        st.integers(0, 2**32 - 1),
        st.builds(p.Action, st.integers(0, 0x1FF)),
        st.builds(p.Protocol, st.integers(0, 0x1FFFFF)),
        st.dictionaries(st.sampled_from(list(p.Stage)), text, max_size=7),
    ),
    st.builds(p.ReplyCode, text),
    st.builds(p.AddHeader, names, text),
    st.builds(p.InsertHeader, uint32, names, text),
    st.builds(p.ChangeHeader, uint32, names, text),
    st.builds(p.Quarantine, text),
    st.sampled_from(
        [p.Continue(), p.Accept(), p.Reject(), p.Tempfail(), p.Discard(), p.Skip(), p.Progress()]
    ),
)


def _one(packet: bytes) -> tuple[bytes, bytes]:
    packets = list(p.PacketReader().feed(packet))
    assert len(packets) == 1
    return packets[0]


@given(commands)
def test_commands_round_trip(command: p.Command) -> None:
    assert p.decode_command(*_one(p.encode_command(command))) == command


@given(responses)
def test_responses_round_trip(response: p.Response) -> None:
    assert p.decode_response(*_one(p.encode_response(response))) == response


@given(st.lists(commands, max_size=8), st.integers(1, 64))
def test_framing_in_any_pieces(items: list[p.Command], size: int) -> None:
    """A stream cut anywhere gives the same packets."""
    stream = b"".join(p.encode_command(c) for c in items)
    reader = p.PacketReader()
    got = []
    for start in range(0, len(stream), size):
        got += [p.decode_command(*pk) for pk in reader.feed(stream[start : start + size])]
    assert got == items
    assert reader.pending == 0


@given(st.binary(max_size=64), st.binary(max_size=1))
def test_garbage_raises_only_protocol_error(data: bytes, code: bytes) -> None:
    for decode in (p.decode_command, p.decode_response):
        with contextlib.suppress(p.ProtocolError):
            decode(code or b"C", data)


@given(st.binary(max_size=300))
def test_garbage_stream_raises_only_protocol_error(data: bytes) -> None:
    try:
        for code, body in p.PacketReader(max_length=200).feed(data):
            p.decode_command(code, body)
    except p.ProtocolError:
        pass


def test_length_cap_refused_before_buffering() -> None:
    reader = p.PacketReader(max_length=100)
    with pytest.raises(p.ProtocolError, match="limit"):
        list(reader.feed(struct.pack(">I", 101) + b"B"))
    with pytest.raises(p.ProtocolError, match="empty"):
        list(p.PacketReader().feed(b"\x00\x00\x00\x00"))


def test_truncated_packet_waits() -> None:
    packet = p.encode_command(p.Helo("mx.example.com"))
    reader = p.PacketReader()
    assert list(reader.feed(packet[:-1])) == []
    assert [p.decode_command(*pk) for pk in reader.feed(packet[-1:])] == [p.Helo("mx.example.com")]


@pytest.mark.parametrize(
    ("code", "data"),
    [
        (b"C", b"host\x00"),  # no family
        (b"C", b"host\x004\x00"),  # no port
        (b"C", b"host\x00X\x00\x19127.0.0.1\x00"),  # unknown family
        (b"C", b"host\x004\x00\x19127.0.0.1"),  # address not terminated
        (b"H", b"mx"),  # not terminated
        (b"H", b"a\x00b\x00"),  # two strings
        (b"L", b"Subject\x00"),  # header without value
        (b"D", b""),  # macro without command
        (b"D", b"Mname\x00"),  # name without value
        (b"O", b"\x00\x00\x00\x06"),  # short negotiation
        (b"Z", b""),  # unknown command
    ],
)
def test_malformed_commands(code: bytes, data: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode_command(code, data)


def test_connect_as_postfix_sends_it() -> None:
    """IPv4 with port, unix socket, and unknown (no port, no address: Postfix milter8.c)."""
    inet = b"mail.example.com\x004\x04\xd2192.0.2.1\x00"
    assert p.decode_command(b"C", inet) == p.Connect(
        "mail.example.com", p.Family.INET, 1234, "192.0.2.1"
    )
    unix = b"localhost\x00L\x00\x00/var/run/sock\x00"
    assert p.decode_command(b"C", unix) == p.Connect("localhost", p.Family.UNIX, 0, "/var/run/sock")
    assert p.decode_command(b"C", b"unknown\x00U") == p.Connect("unknown", p.Family.UNKNOWN)


def test_reply_text_multiline_and_escaped() -> None:
    assert p.reply_text(550, "5.7.1", ["one"]) == "550 5.7.1 one"
    assert p.reply_text(451, "4.7.1", ["a", "100% b\r\n250 ok"]) == (
        "451-4.7.1 a\r\n451 4.7.1 100%% b  250 ok"
    )
    assert p.reply_text(554, "", ["x"]) == "554 x"
    with pytest.raises(ValueError, match="4xx or 5xx"):
        p.reply_text(250, "2.0.0", ["ok"])


def test_strings_with_nul_refused_on_encoding() -> None:
    with pytest.raises(p.ProtocolError):
        p.encode_response(p.AddHeader("X", "a\x00b"))
