"""The relayed message, written from the one parse: our fields on top, forged ones dropped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailwarden.body import chunks
from mailwarden.gateway.headers import relayed_message as relay_parts
from mailwarden.pipeline import parse

RECEIVED = b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"


def relayed_message(*args: object) -> tuple[bytes, list[str]]:
    """The relayed message joined (head then body), and the removed names."""
    head, body, removed = relay_parts(*args)  # type: ignore[arg-type]
    return head + b"".join(chunks(body)), removed


def test_fields_are_added_folded_and_removed_by_index() -> None:
    message = b"A: 1\r\nB: 2\r\n folded\r\nC: 3\r\n\r\nbody\r\n"
    value = "mx.example.net; " + "dkim=pass header.d=example.com " * 4
    out, removed = relayed_message(
        parse(message), RECEIVED, [("Authentication-Results", value.strip())], [1]
    )
    assert removed == ["B"]
    head, _, body = out.partition(b"\r\n\r\n")
    assert body == b"body\r\n"
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"Received:")
    assert all(len(line) <= 78 for line in lines)
    assert b"A: 1" in head
    assert b"C: 3" in head
    assert b"B: 2" not in head
    assert b"folded" not in head
    unfolded = head.replace(b"\r\n ", b" ")
    assert b"Authentication-Results: " + value.strip().encode() in unfolded


def test_indices_out_of_range_are_ignored() -> None:
    out, removed = relayed_message(parse(b"A: 1\r\n\r\nx\r\n"), RECEIVED, [], [-1, 5])
    assert removed == []
    assert out == RECEIVED + b"A: 1\r\n\r\nx\r\n"


def test_an_unreadable_header_is_relayed_as_it_came() -> None:
    raw = b"X: 1\r\n" * 1001 + b"\r\nbody\r\n"  # over the limit of fields
    parsed = parse(raw)
    assert parsed.message is None
    out, removed = relayed_message(parsed, RECEIVED, [("X-A", "b")], [0])
    assert (out, removed) == (RECEIVED + b"X-A: b\r\n" + raw, [])


def test_a_malformed_header_is_relayed_byte_for_byte() -> None:
    """Lines that are not fields are kept (the strict policy refuses such mail; relaxed, it
    passes unchanged) and never read as a field."""
    raw = b" continuation first\r\nFrom: a@b.example\r\nno colon here\r\n\r\nbody\r\n"
    parsed = parse(raw)
    assert parsed.header_problem is not None
    assert parsed.authors.domain == "b.example"
    out, removed = relayed_message(parsed, RECEIVED, [], [])
    assert (out, removed) == (RECEIVED + raw, [])


@given(st.binary(max_size=300), st.lists(st.integers(-3, 10), max_size=4))
def test_relaying_never_crashes_and_keeps_the_body(message: bytes, drop: list[int]) -> None:
    parsed = parse(message)
    out, removed = relayed_message(parsed, RECEIVED, [("X-A", "b")], drop)
    assert out.startswith(RECEIVED + b"X-A: b\r\n")
    assert len(removed) <= len(set(drop))
    if parsed.message is not None:
        assert out.endswith(parsed.message.separator + parsed.message.body)
