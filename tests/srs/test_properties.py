"""Property tests: SRS never crashes on hostile input, and what it writes it reads back."""

from __future__ import annotations

import contextlib
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.srs import SRS, AliasError, Aliases, SRSError

DAY = 86400
NOW = 1_714_521_600
ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-."
ours = SRS("srs.example.net", (b"secret one", b"secret two"), clock=lambda: NOW)

local_parts = st.text(alphabet=ATEXT, min_size=1, max_size=40)
labels = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)
domains = st.lists(labels, min_size=2, max_size=4).map(".".join)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)


@given(st.text(max_size=600))
@settings(max_examples=400)
def test_reverse_never_crashes(text: str) -> None:
    try:
        result = ours.reverse(text)
    except SRSError:
        return
    assert "@" in result


@given(st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_reverse_of_srs_looking_junk(junk: str) -> None:
    for prefix in ("SRS0=", "SRS1=", "srs0+", "SRS1-"):
        with contextlib.suppress(SRSError):
            ours.reverse(prefix + junk + "@srs.example.net")


@given(st.text(max_size=300))
def test_forward_never_crashes(text: str) -> None:
    with contextlib.suppress(SRSError):
        ours.forward(text)


@given(addresses, st.integers(min_value=0, max_value=21))
@settings(max_examples=300)
def test_round_trip(sender: str, days: int) -> None:
    address = ours.forward(sender)
    assert address.endswith("@srs.example.net")
    later = SRS(ours.domain, ours.secrets, clock=lambda: NOW + days * DAY)
    back = later.reverse(address)
    if sender[:5].upper() in ("SRS0=", "SRS0-", "SRS0+") and len(sender.split("@")[0]) > 5:
        assert back.lower() == sender.lower()  # SRS1 back to the SRS0 address, tag upper-cased
    else:
        assert back == sender
    assert later.reverse(address.lower()).lower() == sender.lower()  # MTAs may lower-case


@given(addresses)
def test_tampering_any_character_is_caught(sender: str) -> None:
    address = ours.forward(sender)
    local = address.split("@")[0]
    for index in range(5, len(local)):
        char = local[index]
        swapped = "x" if char.lower() != "x" else "y"
        forged = local[:index] + swapped + local[index + 1 :] + "@srs.example.net"
        try:
            result = ours.reverse(forged)
        except SRSError:
            continue
        # the only edits that still verify change case, never the meaning
        assert result.lower() == ours.reverse(address).lower()


@given(st.text(max_size=400))
def test_alias_files_parse_or_fail_cleanly(text: str) -> None:
    with contextlib.suppress(AliasError):
        Aliases.parse(text)
