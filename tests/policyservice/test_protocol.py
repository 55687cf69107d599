"""The policy protocol reader against hostile input: property-based, over real streams."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.policyservice import (
    MALFORMED,
    Limits,
    ProtocolError,
    format_answer,
    parse_block,
    read_request,
)

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
VALUES = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\x00", blacklist_categories=["Cs"]),
    max_size=200,
)


def feed(data: bytes, *, eof: bool = True, limit: int = 8194) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def read_all(data: bytes, limits: Limits | None = None) -> list[object]:
    """Every request in `data`, then None, or the exception that ended the reading."""
    limits = limits or Limits()
    reader = feed(data, limit=limits.max_line + 2)
    out: list[object] = []
    while True:
        try:
            request = await read_request(reader, limits)
        except (ProtocolError, TimeoutError) as exc:
            out.append(exc)
            return out
        out.append(request)
        if request is None:
            return out


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, VALUES, max_size=30))
def test_round_trip(attributes: dict[str, str]) -> None:
    """What Postfix would send is read back exactly; unknown names are kept, not refused."""
    attributes = {"request": "smtpd_access_policy", **attributes}
    data = "".join(f"{k}={v}\n" for k, v in attributes.items()).encode() + b"\n"
    found = asyncio.run(read_all(data * 3))
    assert len(found) == 4
    assert found[-1] is None
    for request in found[:3]:
        assert request.attributes == attributes  # type: ignore[attr-defined]
        assert request.problem == ""  # type: ignore[attr-defined]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_never_crash(data: bytes) -> None:
    """Arbitrary bytes: requests (maybe marked malformed), a clean end, or ProtocolError."""
    found = asyncio.run(read_all(data, Limits(max_line=512, max_attributes=20)))
    last = found[-1]
    assert last is None or isinstance(last, ProtocolError)
    for request in found[:-1]:
        assert request is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60).filter(lambda b: b"\n" not in b), max_size=25))
def test_blocks_from_lines(lines: list[bytes]) -> None:
    """A block of any lines parses to a request or to a problem; never raises."""
    request = parse_block(lines)
    if request.problem == "":
        assert request.attributes.get("request") == "smtpd_access_policy"
        assert all(b"\x00" not in line for line in lines)


def test_line_ending_crlf_accepted() -> None:
    data = b"request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n\r\n"
    request = asyncio.run(read_all(data))[0]
    assert request.attributes["protocol_state"] == "RCPT"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        (b"request=smtpd_access_policy\nnoequals\n\n", "no '='"),
        (b"request=smtpd_access_policy\nBAD NAME=x\n\n", "bad attribute name"),
        (b"request=smtpd_access_policy\nsender=a\nsender=b\n\n", "sender twice"),
        (b"request=smtpd_access_policy\nsender=a\x00b\n\n", "NUL"),
        (b"protocol_state=RCPT\n\n", "not smtpd_access_policy"),
        (b"\n", "empty request"),
        (b"=value\nrequest=smtpd_access_policy\n\n", "bad attribute name"),
    ],
)
def test_malformed_blocks_are_marked(block: bytes, problem: str) -> None:
    request = asyncio.run(read_all(block))[0]
    assert problem in request.problem  # type: ignore[attr-defined]


def test_non_utf8_values_are_replaced_not_refused() -> None:
    data = b"request=smtpd_access_policy\nsender=caf\xe9@example.com\n\n"
    request = asyncio.run(read_all(data))[0]
    assert request.problem == ""  # type: ignore[attr-defined]
    assert request.attributes["sender"] == "caf\ufffd@example.com"  # type: ignore[attr-defined]


def test_line_too_long_closes() -> None:
    data = b"request=smtpd_access_policy\nsender=" + b"a" * 10_000 + b"\n\n"
    found = asyncio.run(read_all(data, Limits(max_line=1024)))
    assert isinstance(found[-1], ProtocolError)
    assert "longer than 1024" in str(found[-1])


def test_too_many_lines_closes() -> None:
    data = b"request=smtpd_access_policy\n" + b"x=1\n" * 200 + b"\n"
    found = asyncio.run(read_all(data, Limits(max_attributes=50)))
    assert isinstance(found[-1], ProtocolError)


def test_truncated_request_closes() -> None:
    found = asyncio.run(read_all(b"request=smtpd_access_policy\nsender=a"))
    assert isinstance(found[-1], ProtocolError)
    found = asyncio.run(read_all(b"request=smtpd_access_policy\n"))
    assert isinstance(found[-1], ProtocolError)


def test_clean_end_between_requests() -> None:
    assert asyncio.run(read_all(b"")) == [None]


async def test_slow_peer_times_out() -> None:
    reader = feed(b"request=smtpd_access_policy\nsender=a\n", eof=False)
    with pytest.raises(TimeoutError):
        await read_request(reader, Limits(read_timeout=0.2))


async def test_idle_peer_times_out() -> None:
    reader = feed(b"", eof=False)
    with pytest.raises(TimeoutError):
        await read_request(reader, Limits(idle_timeout=0.2))


async def test_trickling_peer_cut_at_the_block_deadline() -> None:
    """One byte at a time keeps each read short; the whole block still has one deadline."""
    reader = asyncio.StreamReader()
    limits = Limits(read_timeout=0.5, idle_timeout=5)

    async def trickle() -> None:
        for byte in b"request=smtpd_access_policy\n" + b"x" * 1000:
            reader.feed_data(bytes([byte]))
            await asyncio.sleep(0.01)

    feeder = asyncio.ensure_future(trickle())
    try:
        with pytest.raises(TimeoutError):
            await read_request(reader, limits)
    finally:
        feeder.cancel()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_answers_are_one_line(action: str) -> None:
    out = format_answer(action)
    assert out.startswith(b"action=")
    assert out.endswith(b"\n\n")
    assert out.count(b"\n") == 2
    assert b"\r" not in out
    assert b"\x00" not in out
    assert len(out) <= len(b"action=") + 1000 + 2
    out.decode("utf-8")  # always valid UTF-8


def test_malformed_answer_is_a_temporary_refusal() -> None:
    assert MALFORMED.startswith("DEFER_IF_PERMIT 4.")
