"""Which addresses a user may send as: a table, and properties over hostile addresses."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.submission import SenderError, canonical_entry, may_send_as

ALICE = ("alice@a.example", "a.smith@a.example")
ADMIN = ("@b.example",)


@pytest.mark.parametrize(
    ("entries", "address", "allowed"),
    [
        (ALICE, "alice@a.example", True),
        (ALICE, "ALICE@A.Example", True),
        (ALICE, "a.smith@a.example", True),
        (ALICE, "alice+lists@a.example", True),
        (ALICE, "alice+@a.example", True),
        (ALICE, "+alice@a.example", False),
        (ALICE, "bob@a.example", False),
        (ALICE, "alice@a.example.evil", False),
        (ALICE, "alice@evil.a.example", False),
        (ALICE, "alice@a.example.", True),  # the root dot names the same domain
        (ALICE, '"alice"@a.example', False),
        (ALICE, "alice", False),
        (ALICE, "@a.example", False),
        (ALICE, "alice@@a.example", False),
        (ALICE, "alice@a.example@evil.example", False),
        (ALICE, "", False),
        (ADMIN, "anyone@b.example", True),
        (ADMIN, "anyone@sub.b.example", False),
        (("ü@ü.example",), "ü@xn--tda.example", True),  # U-labels are A-labels
    ],
)
def test_may_send_as(entries: tuple[str, ...], address: str, allowed: bool) -> None:
    canonical = [canonical_entry(e) for e in entries]
    assert may_send_as(canonical, address) is allowed


def test_no_subaddresses_without_a_delimiter() -> None:
    assert not may_send_as(["alice@a.example"], "alice+x@a.example", "")
    assert may_send_as(["alice@a.example"], "alice-x@a.example", "-")


@pytest.mark.parametrize(
    "entry", ["", "@", "alice@", "@a", "a b@c.example", "x@-bad.example", "x@a..example"]
)
def test_invalid_entries(entry: str) -> None:
    with pytest.raises(SenderError):
        canonical_entry(entry)


@given(st.text(max_size=80), st.lists(st.text(max_size=40), max_size=4))
def test_never_crashes_and_only_own_domains_pass(address: str, entries: list[str]) -> None:
    canonical = []
    for entry in entries:
        with contextlib.suppress(SenderError):
            canonical.append(canonical_entry(entry))
    if may_send_as(canonical, address):
        domain = canonical_entry(address).rpartition("@")[2]
        assert any(entry.rpartition("@")[2] == domain for entry in canonical)
