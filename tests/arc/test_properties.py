"""Property-based tests of the ARC header parsers and of validation on hostile input.

The parsers raise only ARCError; chain validation never raises and says fail (or none when no
ARC field is left) for anything it cannot validate.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.arc.helpers import NOW, base_message, ed_key, resolver, sealed_by

from mailwarden.arc import (
    ARCError,
    ARCStatus,
    ARCVerifier,
    collect_sets,
    parse_aar,
    parse_message_signature,
    parse_seal,
    seal,
)
from mailwarden.arc.seal import split_resinfos
from mailwarden.message import Message, MessageError

TEXT = st.text(st.characters(codec="utf-8"), max_size=200)
TAG_NAMES = st.sampled_from(
    ["a", "b", "bh", "c", "cv", "d", "h", "i", "s", "t", "x", "l", "A", "z9"]
)
TAG_VALUES = st.one_of(
    st.sampled_from(
        [
            "rsa-sha256",
            "ed25519-sha256",
            "rsa-sha1",
            "none",
            "pass",
            "fail",
            "relaxed/relaxed",
            "simple",
            "example.org",
            "sel",
            "1",
            "0",
            "50",
            "51",
            "12345",
            "from:to",
            "",
            "Zm9v",
            "arc-seal",
            "from::to",
            "bad domain",
        ]
    ),
    st.from_regex(r"[\x21-\x3a\x3c-\x7e]{0,12}", fullmatch=True),
)
TAG_LISTS = st.lists(st.tuples(TAG_NAMES, TAG_VALUES), max_size=10).map(
    lambda tags: "; ".join(f"{n}={v}" for n, v in tags)
)
SEALED = sealed_by(base_message(), "list.example", "ed", "none")


def _error(call: Callable[[], object]) -> str | None:
    """The ARCError message `call` raised (None: it returned); any other exception escapes."""
    try:
        call()
    except ARCError as exc:
        return str(exc) or "<empty message>"
    return None


def _parsers(value: str | bytes) -> None:
    for parser in (parse_seal, parse_message_signature, parse_aar):
        error = _error(lambda parser=parser: parser(value))  # type: ignore[misc]
        assert error != "<empty message>"


@given(TEXT)
def test_random_text_only_raises_arc_error(value: str) -> None:
    _parsers(value)
    _parsers(value.encode("utf-8"))


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_arc_error(value: bytes) -> None:
    _parsers(value)


@given(TAG_LISTS)
def test_random_tag_lists(value: str) -> None:
    _parsers(value)
    for parser in (parse_seal, parse_message_signature):
        try:
            parsed = parser(value)
        except ARCError:
            continue
        assert 1 <= parsed.instance <= 50
        assert parsed.algorithm in ("rsa-sha256", "ed25519-sha256")
        assert parsed.signature


@given(st.integers(min_value=-5, max_value=80), TEXT)
def test_aar_instance_rule(instance: int, payload: str) -> None:
    value = f"i={instance}; {payload}"
    try:
        aar = parse_aar(value)
    except ARCError:
        assert not 1 <= instance <= 50
    else:
        assert aar.instance == instance
        assert aar.payload == " ".join(value.partition(";")[2].split())


@given(TEXT)
def test_split_resinfos_never_crashes(value: str) -> None:
    parts = split_resinfos(value)
    assert all(part and part == part.strip(" \t") for part in parts)


NAMES = st.sampled_from(
    ["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results", "arc-seal"]
)


@given(st.lists(st.tuples(NAMES, st.one_of(TAG_LISTS, TEXT)), max_size=6))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_random_arc_fields_never_crash_validation(fields: list[tuple[str, str]]) -> None:
    raw = (
        b"".join(f"{name}: {' '.join(value.split())}\r\n".encode() for name, value in fields)
        + base_message().raw
    )
    try:
        message = Message.from_bytes(raw)
    except MessageError:
        return
    assert _error(lambda: collect_sets(message)) != "<empty message>"
    result = asyncio.run(ARCVerifier(resolver(), clock=lambda: NOW).verify(message))
    if fields:
        assert result.result is ARCStatus.FAIL
        assert result.reason
    else:
        assert result.result is ARCStatus.NONE
    assert result.resinfo().format().startswith(f"arc={result.result}")


@given(st.data())
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=60)
def test_mutated_seals_never_crash_validation(data: st.DataObject) -> None:
    fields = list(SEALED.fields)
    arc_indexes = [i for i, f in enumerate(fields) if f.lname.startswith("arc-")]
    index = data.draw(st.sampled_from(arc_indexes))
    value = bytearray(fields[index].value)
    position = data.draw(st.integers(0, len(value) - 1))
    value[position] = data.draw(st.integers(0x20, 0x7E))
    raw = fields[index].name + b":" + bytes(value) + b"\r\n"
    try:
        fields[index] = Message.from_bytes(raw).fields[0]
    except MessageError:
        return
    message = Message(tuple(fields), SEALED.separator, SEALED.body)
    result = asyncio.run(ARCVerifier(resolver(), clock=lambda: NOW).verify(message))
    assert result.result in (
        ARCStatus.PASS,
        ARCStatus.FAIL,
    )  # pass: an edit canonicalization erases
    assert result.reason
    assert result.resinfo().format().startswith(f"arc={result.result}")


def test_valid_seal_round_trip() -> None:
    seal_field = SEALED.get("ARC-Seal")
    assert seal_field is not None
    parsed = parse_seal(seal_field.value)
    assert base64.b64encode(parsed.signature).decode() == parsed.b_text
    assert (parsed.instance, parsed.cv, parsed.domain, parsed.selector) == (
        1,
        ARCStatus.NONE,
        "list.example",
        "ed",
    )


LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
DOMAIN = st.lists(LABEL, min_size=2, max_size=4).map(".".join)
RESINFO = st.tuples(
    st.sampled_from(["spf", "dkim", "dmarc", "arc", "iprev"]),
    st.sampled_from(["pass", "fail", "none", "softfail"]),
    st.lists(st.tuples(st.sampled_from(["header.d", "smtp.mailfrom", "header.from"]), DOMAIN)),
    st.sampled_from(["", " (1024-bit key)", ' reason="a; b (c)"']),
).map(lambda r: f"{r[0]}={r[1]}{r[3]}" + "".join(f" {p}={v}" for p, v in r[2]))


@given(
    DOMAIN,
    LABEL,
    DOMAIN,
    st.lists(RESINFO, max_size=5),
    st.integers(min_value=0, max_value=2**40),
)
@settings(deadline=None, max_examples=40)
def test_seal_parse_round_trip(
    domain: str, selector: str, authserv_id: str, resinfos: list[str], timestamp: int
) -> None:
    fields = dict(
        seal(
            base_message(),
            domain=domain,
            selector=selector,
            private_key=ed_key(0),
            authserv_id=authserv_id,
            auth_results="; ".join(resinfos),
            chain_validation="none",
            timestamp=timestamp,
        )
    )
    parsed_seal = parse_seal(fields["ARC-Seal"])
    assert (parsed_seal.domain, parsed_seal.selector, parsed_seal.instance) == (domain, selector, 1)
    assert (parsed_seal.cv, parsed_seal.timestamp) == (ARCStatus.NONE, timestamp)
    ams = parse_message_signature(fields["ARC-Message-Signature"])
    assert (ams.domain, ams.selector, ams.instance, ams.timestamp) == (
        domain,
        selector,
        1,
        timestamp,
    )
    aar = parse_aar(fields["ARC-Authentication-Results"])
    assert aar.instance == 1
    assert split_resinfos(aar.payload) == [authserv_id, *(resinfos or ["none"])]
    assert aar.parsed is not None
    assert aar.parsed.authserv_id == authserv_id
    assert [f"{r.method}={r.result}" for r in aar.parsed.results] == [
        r.split(" ")[0] for r in resinfos
    ]
