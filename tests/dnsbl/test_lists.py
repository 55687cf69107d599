"""List configuration: return-code patterns and maps, table parsing, clear errors."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.dnsbl import (
    DEFAULT_LISTS,
    ListConfigError,
    ListKind,
    ListType,
    format_return_codes,
    parse_code_pattern,
    parse_list,
    parse_return_codes,
)


def test_patterns() -> None:
    p = parse_code_pattern("127.0.*.3")
    assert p.matches(ipaddress.IPv4Address("127.0.9.3"))
    assert not p.matches(ipaddress.IPv4Address("127.0.9.2"))
    r = parse_code_pattern(" 127.0.0.4-7 ")
    assert [r.matches(ipaddress.IPv4Address(f"127.0.0.{i}")) for i in (3, 4, 7, 8)] == [
        False,
        True,
        True,
        False,
    ]
    assert str(r) == "127.0.0.4-7"


@pytest.mark.parametrize(
    "text", ["", "127.0.0", "127.0.0.256", "127.0.0.7-4", "127.0.0.x", "1.2.3.4.5", "127.0.0.-1"]
)
def test_bad_patterns(text: str) -> None:
    with pytest.raises(ListConfigError, match="return code"):
        parse_code_pattern(text)


def test_return_code_text() -> None:
    codes = parse_return_codes("127.0.0.2=RBL_X_SBL:4, 127.0.0.10-11=RBL_X_PBL:1.5\n127.0.*.3=Y")
    assert [(str(c.pattern), c.symbol, c.score) for c in codes] == [
        ("127.0.0.2", "RBL_X_SBL", 4.0),
        ("127.0.0.10-11", "RBL_X_PBL", 1.5),
        ("127.0.*.3", "Y", 1.0),
    ]
    assert parse_return_codes(format_return_codes(codes)) == codes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.2", "expected PATTERN=SYMBOL"),
        ("127.0.0.2=lower", "symbol must be upper-case"),
        ("127.0.0.2=X:many", "not a number"),
        ("127.0.0.2=X:nan", "finite"),
    ],
)
def test_bad_return_code_text(text: str, message: str) -> None:
    with pytest.raises(ListConfigError, match=message):
        parse_return_codes(text)


def test_parse_list_table() -> None:
    lst = parse_list(
        {
            "name": "my-rbl",
            "zone": "RBL.Example.NET.",
            "codes": {"127.0.0.2": "RBL_MINE:3", "127.0.0.3": {"symbol": "RBL_MINE_X", "score": 2}},
            "bitmask": {"8": "RBL_MINE_BIT8:1"},
            "error_codes": {"127.0.0.255": "blocked"},
            "ipv6": False,
            "needs_key": "ask them",
        }
    )
    assert lst.zone == "rbl.example.net"
    assert lst.kind is ListKind.IP
    assert lst.type is ListType.BLOCK
    assert [c.symbol for c in lst.codes] == ["RBL_MINE", "RBL_MINE_X"]
    assert lst.bitmask[0].bit == 8
    assert lst.default_symbol == "RBL_MY_RBL"
    assert not lst.ipv6
    wl = parse_list({"name": "w", "zone": "wl.example", "type": "allow", "kind": "domain"})
    assert wl.default_symbol == "RHSWL_W"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"zone": "x.example"}, "list name"),
        ({"name": "a", "zone": "not a zone"}, "zone"),
        ({"name": "a", "zone": "x.example", "kind": "url"}, "list a"),
        ({"name": "a", "zone": "x.example", "colour": "red"}, "unknown list settings: colour"),
        ({"name": "a", "zone": "x.example", "bitmask": {"3": "X"}}, "power of two"),
        ({"name": "a", "zone": "x.example", "bitmask": {"b": "X"}}, "not a number"),
        ({"name": "a", "zone": "x.example", "codes": 5}, "codes must be"),
        ({"name": "a", "zone": "x.example", "codes": {"127.0.0.2": 5}}, "expected SYMBOL"),
        ({"name": "a", "zone": "x.example", "ipv6": "yes"}, "true or false"),
        ({"name": "a", "zone": "x.example", "error_codes": {"x": "y"}}, "no address"),
        ({"name": "a", "zone": "x.example", "default_score": True}, "number"),
        ({"name": "a", "zone": "x.example", "needs_key": 3}, "text"),
    ],
)
def test_bad_list_tables(data: dict[str, object], message: str) -> None:
    with pytest.raises(ListConfigError, match=message):
        parse_list(data)


def test_defaults_are_valid_configuration() -> None:
    for lst in DEFAULT_LISTS:
        again = parse_list(
            {
                "name": lst.name,
                "zone": lst.zone,
                "kind": lst.kind.value,
                "type": lst.type.value,
                "codes": format_return_codes(lst.codes),
            }
        )
        assert [(c.pattern, c.symbol, c.score) for c in again.codes] == [
            (c.pattern, c.symbol, c.score) for c in lst.codes
        ]


octet_field = st.one_of(
    st.just("*"),
    st.integers(0, 255).map(str),
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(
        lambda t: f"{min(t)}-{max(t)}" if t[0] != t[1] else str(t[0])
    ),
)
pattern_text = st.lists(octet_field, min_size=4, max_size=4).map(".".join)
symbol_text = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
score = st.floats(-100, 100, allow_nan=False).map(lambda f: round(f, 3))


@given(pattern_text, st.ip_addresses(v=4))
def test_pattern_round_trip_and_match(text: str, address: ipaddress.IPv4Address) -> None:
    pattern = parse_code_pattern(text)
    assert parse_code_pattern(str(pattern)) == pattern
    fields = text.split(".")
    expected = True
    for part, byte in zip(fields, address.packed, strict=True):
        if part == "*":
            continue
        lo, _, hi = part.partition("-")
        expected &= int(lo) <= byte <= int(hi or lo)
    assert pattern.matches(address) == expected


@given(st.lists(st.tuples(pattern_text, symbol_text, score), max_size=8))
def test_code_map_round_trip(entries: list[tuple[str, str, float]]) -> None:
    text = ", ".join(f"{p}={s}:{v}" for p, s, v in entries)
    codes = parse_return_codes(text)
    assert [(c.symbol, c.score) for c in codes] == [(s, v) for _, s, v in entries]
    assert parse_return_codes(format_return_codes(codes)) == codes


@given(st.text(max_size=200))
def test_code_map_parser_never_crashes(text: str) -> None:
    try:
        parse_return_codes(text)
    except ListConfigError as exc:
        message = str(exc)
    else:
        message = "ok"
    assert message


@given(st.dictionaries(st.sampled_from(["name", "zone", "kind", "codes", "ipv6", "x"]),
                       st.one_of(st.text(max_size=20), st.booleans(), st.integers())))  # fmt: skip
def test_list_parser_never_crashes(data: dict[str, object]) -> None:
    try:
        parse_list(data)
    except ListConfigError as exc:
        message = str(exc)
    else:
        message = "ok"
    assert message
