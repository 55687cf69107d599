"""DMARC record grammar (RFC 9989 §4.7-4.8, RFC 7489 pct/rf/ri)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.dmarc import (
    PSD,
    Alignment,
    DMARCPolicy,
    RecordError,
    ReportURI,
    is_dmarc_record,
    parse_record,
    tree_walk_names,
)


def test_every_tag() -> None:
    record = parse_record(
        "v=DMARC1; p=quarantine; sp=reject; np=none; adkim=s; aspf=s; fo=d:s; "
        "rua=mailto:a@example.com!10m, https://r.example/x; ruf=mailto:f@example.com; "
        "psd=n; t=y; pct=20; rf=afrf; ri=3600; future=whatever"
    )
    assert (record.p, record.sp, record.np) == (
        DMARCPolicy.QUARANTINE,
        DMARCPolicy.REJECT,
        DMARCPolicy.NONE,
    )
    assert (record.adkim, record.aspf, record.psd, record.testing) == (
        Alignment.STRICT,
        Alignment.STRICT,
        PSD.NO,
        True,
    )
    assert record.fo == ("d", "s")
    assert record.rua == (
        ReportURI("mailto:a@example.com", "10m"),
        ReportURI("https://r.example/x"),
    )
    assert record.ruf[0].scheme == "mailto"
    assert (record.pct, record.rf, record.ri) == (20, ("afrf",), 3600)
    assert record.errors == ()
    assert record.policy_usable
    assert not record.is_rfc7489  # it has t


def test_defaults() -> None:
    record = parse_record("v=DMARC1; p=none")
    assert (record.adkim, record.aspf, record.psd, record.testing, record.fo) == (
        Alignment.RELAXED,
        Alignment.RELAXED,
        PSD.UNKNOWN,
        False,
        ("0",),
    )
    assert record.subdomain_policy is DMARCPolicy.NONE
    assert record.nonexistent_policy is DMARCPolicy.NONE
    assert record.rua == ()


def test_rfc7489_record() -> None:
    record = parse_record("v=DMARC1; p=reject; pct=50")
    assert record.is_rfc7489
    assert record.pct == 50


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("v=DMARC1; p=none; reject", "malformed term 'reject' ignored"),
        ("v=DMARC1; p=none; p=reject", "duplicate tag 'p' ignored"),
        ("v=DMARC1; p=none; adkim=x", "invalid adkim='x', using r"),
        ("v=DMARC1; p=none; pct=101", "invalid pct='101' ignored"),
        ("v=DMARC1; p=none; rua=example.com", "invalid rua URI 'example.com' ignored"),
        ("v=DMARC1; p=none; fo=2", "invalid fo='2', using 0"),
        ("v=DMARC1; p=none; t=maybe", "invalid t='maybe', using n"),
        ("v=DMARC1; p=none; psd=x", "invalid psd='x', using u"),
    ],
)
def test_errors_are_discarded_not_fatal(text: str, error: str) -> None:
    record = parse_record(text)
    assert record.p is DMARCPolicy.NONE
    assert error in record.errors


def test_invalid_policies() -> None:
    assert parse_record("v=DMARC1; p=bogus").invalid_policy_tags == ("p",)
    record = parse_record("v=DMARC1; p=reject; sp=nope")
    assert record.invalid_policy_tags == ("sp",)
    assert not record.policy_usable
    assert not parse_record("v=DMARC1; sp=reject").policy_usable


@pytest.mark.parametrize(
    "text",
    [
        "v=DMARC1",
        "v=DMARC1;",
        " v = DMARC1 ;p=none",
        "v=DMARC1\t;\tp=none;",
    ],
)
def test_is_dmarc_record(text: str) -> None:
    assert is_dmarc_record(text)
    parse_record(text)


@pytest.mark.parametrize(
    "text", ["", "v=DMARC2; p=none", "v=dmarc1; p=none", "p=none; v=DMARC1", "v=DMARC10"]
)
def test_not_a_record(text: str) -> None:
    assert not is_dmarc_record(text)
    with pytest.raises(RecordError):
        parse_record(text)


def test_tree_walk_names() -> None:
    assert tree_walk_names("example.com") == ["example.com", "com"]
    assert tree_walk_names("com") == ["com"]
    eight = "a.b.c.d.e.f.example.com"
    assert len(tree_walk_names(eight)) == 8
    assert tree_walk_names(eight)[1] == "b.c.d.e.f.example.com"
    nine = "x." + eight
    assert tree_walk_names(nine)[:2] == [nine, "b.c.d.e.f.example.com"]
    assert len(tree_walk_names("a." * 40 + "com")) == 8


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_random_text_never_crashes(text: str) -> None:
    try:
        record = parse_record("v=DMARC1;" + text)
    except RecordError:
        return
    assert record.raw.startswith("v=DMARC1;")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "p",
                    "sp",
                    "np",
                    "adkim",
                    "aspf",
                    "fo",
                    "rua",
                    "ruf",
                    "psd",
                    "t",
                    "pct",
                    "rf",
                    "ri",
                    "x",
                ]
            ),
            st.text(max_size=15),
        ),
        max_size=8,
    )
)
def test_random_tags_never_crash(tags: list[tuple[str, str]]) -> None:
    text = "v=DMARC1; " + "; ".join(f"{name}={value}" for name, value in tags)
    parse_record(text)


@pytest.mark.parametrize("tag", ["pct", "ri"])
@pytest.mark.parametrize("value", ["²", "١٠", "٣"])
def test_non_ascii_digits_are_invalid_not_a_crash(tag: str, value: str) -> None:
    record = parse_record(f"v=DMARC1; p=reject; {tag}={value}")
    assert any(tag in error for error in record.errors)
    assert getattr(record, tag) is None
