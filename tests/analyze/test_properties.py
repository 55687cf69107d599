"""Property tests: the analysis never crashes on whatever header values a message carries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.analyze import explain_headers, find_boundary, parse_received_spf, read_hops
from mailwarden.message import HeaderField, Message

_value = st.lists(
    st.sampled_from([*"abc.-[]()<>;:=@ 0123456789\t", "from ", "by ", "with ", "Mon, 1 Jan 2026"]),
    max_size=60,
).map("".join)
_names = st.sampled_from(
    [
        "Received",
        "Authentication-Results",
        "Received-SPF",
        "DKIM-Signature",
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_received_spf_parser_never_raises(text: str) -> None:
    data = parse_received_spf(text)
    assert isinstance(data["result"], str)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_names, _value), max_size=8), st.lists(st.text(max_size=20), max_size=2))
def test_reading_any_headers_never_raises(
    fields: list[tuple[str, str]], trusted: list[str]
) -> None:
    headers = tuple(
        HeaderField.make(name.encode(), (" " + value).encode("utf-8")) for name, value in fields
    )
    message = Message((*headers, HeaderField.make(b"From", b" a@example.com")), b"\r\n", b"x\r\n")
    hops = read_hops(message, now=0.0)
    boundary, marked = find_boundary(hops, trusted, "mx.example.net")
    assert len(marked) == len(hops) == sum(1 for name, _ in fields if name == "Received")
    assert boundary.hop is None or any(h.index == boundary.hop for h in marked)
    for explanation in explain_headers(message, boundary.trusted_names):
        explanation.to_dict()
    for hop in marked:
        hop.to_dict()
