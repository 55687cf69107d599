"""SRS as libsrs2 writes and reads it: vectors computed here from the published algorithm
(HMAC-SHA1 of the lower-cased parts, base64, a base32 day stamp), the guarded SRS1 form,
several secrets, expiry around the 1024-day wrap, and what a forger would try."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from mailwarden.srs import SRS, SRSError, SRSReason, is_srs_address, srs_hash, timestamp

DAY = 86400
NOW = 1_714_521_600  # 2024-05-01: day 19844, 19844 % 1024 = 388 = 12*32 + 4 -> "ME"
SECRET = b"tops3cr3t"


def srs(now: float = NOW, **kw: object) -> SRS:
    return SRS("srs.example.net", (SECRET,), clock=lambda: now, **kw)  # type: ignore[arg-type]


def expected_hash(secret: bytes, *parts: str) -> str:
    """The hash as libsrs2's srs_hash_create computes it, written out independently."""
    data = "".join(
        p.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))
        for p in parts
    )
    digest = hmac.new(secret, data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()[:4]


@pytest.mark.parametrize(
    ("now", "stamp"),
    [
        (0, "AA"),
        (DAY - 1, "AA"),
        (DAY, "AB"),
        (31 * DAY, "A7"),
        (32 * DAY, "BA"),
        (1023 * DAY, "77"),
        (1024 * DAY, "AA"),  # wraps after 1024 days
        (NOW, "ME"),
        (1_700_000_000, "G3"),  # day 19675 % 1024 = 219 = 6*32 + 27
        (1_796_083_200, "JU"),  # day 20788 % 1024 = 308 = 9*32 + 20
    ],
)
def test_timestamps(now: int, stamp: str) -> None:
    assert timestamp(now) == stamp


def test_srs0_vector() -> None:
    address = srs().forward("Alice@A.Example")
    digest = expected_hash(SECRET, "ME", "A.Example", "Alice")
    assert address == f"SRS0={digest}=ME=A.Example=Alice@srs.example.net"
    assert srs_hash(SECRET, ["ME", "a.example", "alice"]) == digest  # case does not matter
    assert srs().reverse(address) == "Alice@A.Example"


def test_postsrsd_vector() -> None:
    """Computed by postsrsd 1.10 (`postsrsd -s` with this secret) on 2026-12-01."""
    at = 1_796_083_200 + 3600
    assert srs(at).forward("alice@a.example") == "SRS0=a/EM=JU=a.example=alice@srs.example.net"
    assert srs(at).reverse("SRS0=a/EM=JU=a.example=alice@srs.example.net") == "alice@a.example"
    assert srs(at).reverse("srs0=A/em=ju=a.example=alice@SRS.EXAMPLE.NET") == "alice@a.example"


def test_srs1_from_another_forwarders_srs0() -> None:
    first = SRS("fw1.example", (b"their secret",), clock=lambda: NOW).forward("alice@a.example")
    local = first.split("@")[0]
    second = srs().forward(first)
    rest = local[4:]  # "=HHHH=TT=a.example=alice", separator included
    digest = expected_hash(SECRET, "fw1.example", rest)
    assert second == f"SRS1={digest}=fw1.example=={rest[1:]}@srs.example.net"
    # a third forwarder re-signs the SRS1 address, still pointing at the first
    third = SRS("fw3.example", (b"third",), clock=lambda: NOW).forward(second)
    assert third.startswith("SRS1=")
    assert "=fw1.example==" in third
    assert third.endswith("@fw3.example")
    # a bounce to us goes back to the first forwarder's SRS0 address
    assert srs().reverse(second) == first
    assert SRS("fw1.example", (b"their secret",), clock=lambda: NOW).reverse(first) == (
        "alice@a.example"
    )


@pytest.mark.parametrize("separator", ["=", "-", "+"])
def test_separators(separator: str) -> None:
    ours = srs(separator=separator)
    address = ours.forward("alice@a.example")
    assert address.startswith(f"SRS0{separator}")
    assert ours.reverse(address) == "alice@a.example"
    srs1 = ours.forward(address.replace("srs.example.net", "fw1.example"))
    assert srs1.startswith(f"SRS1{separator}")
    assert ours.reverse(srs1) == address.replace("srs.example.net", "fw1.example")


def test_the_first_secret_signs_and_every_secret_verifies() -> None:
    old = srs().forward("alice@a.example")
    rotated = SRS("srs.example.net", (b"new secret", SECRET), clock=lambda: NOW)
    assert rotated.reverse(old) == "alice@a.example"
    new = rotated.forward("alice@a.example")
    assert new != old
    with pytest.raises(SRSError) as caught:
        srs().reverse(new)  # a host without the new secret
    assert caught.value.reason is SRSReason.BAD_HASH


@pytest.mark.parametrize(
    ("days", "ok"),
    [(0, True), (1, True), (21, True), (22, False), (400, False), (-1, False)],
)
def test_expiry(days: int, ok: bool) -> None:
    address = srs().forward("alice@a.example")
    later = srs(NOW + days * DAY)
    if ok:
        assert later.reverse(address) == "alice@a.example"
    else:
        with pytest.raises(SRSError) as caught:
            later.reverse(address)
        assert caught.value.reason is SRSReason.EXPIRED


def test_expiry_across_the_wrap() -> None:
    made = 1023 * DAY + 5  # stamp "77"
    address = srs(made).forward("alice@a.example")
    assert "=77=" in address
    assert srs(made + 10 * DAY).reverse(address) == "alice@a.example"  # stamp now "AJ"
    with pytest.raises(SRSError):
        srs(made + 22 * DAY).reverse(address)


def test_max_age_is_configurable() -> None:
    address = srs().forward("alice@a.example")
    assert srs(NOW + 30 * DAY, max_age=30).reverse(address) == "alice@a.example"
    with pytest.raises(SRSError):
        srs(NOW + 2 * DAY, max_age=1).reverse(address)


def test_hash_length_and_minimum() -> None:
    long = srs(hash_length=8)
    address = long.forward("alice@a.example")
    assert len(address.split("=")[1]) == 8
    assert long.reverse(address) == "alice@a.example"
    short = address.replace(address.split("=")[1], address.split("=")[1][:4])
    with pytest.raises(SRSError) as caught:
        long.reverse(short)
    assert caught.value.reason is SRSReason.HASH_TOO_SHORT
    assert srs(hash_length=8, hash_min=4).reverse(short) == "alice@a.example"
    assert srs().reverse(address) == "alice@a.example"  # longer hashes are cut to the length


@pytest.mark.parametrize(
    "sender",
    ["", "bob@srs.example.net", "BOB@SRS.Example.Net"],
)
def test_not_rewritten(sender: str) -> None:
    assert srs().forward(sender) == sender


def _forge(address: str, index: int, value: str) -> str:
    local, _, domain = address.partition("@")
    parts = local.split("=")
    parts[index] = value
    return "=".join(parts) + "@" + domain


GOOD = srs().forward("alice@a.example")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("alice@srs.example.net", SRSReason.NOT_SRS),
        ("SRS2=abcd=ME=a.example=alice@srs.example.net", SRSReason.NOT_SRS),
        ("SRS0/abcd=ME=a.example=alice@srs.example.net", SRSReason.NOT_SRS),
        ("SRS0", SRSReason.NOT_SRS),
        ("", SRSReason.NOT_SRS),
        ("SRS0=@srs.example.net", SRSReason.MALFORMED),
        ("SRS0=abcd@srs.example.net", SRSReason.MALFORMED),
        ("SRS0=abcd=ME@srs.example.net", SRSReason.MALFORMED),
        ("SRS0=abcd=ME=a.example@srs.example.net", SRSReason.MALFORMED),
        ("SRS0=abcd=ME==alice@srs.example.net", SRSReason.MALFORMED),
        ("SRS0=abcd=ME=a.example=@srs.example.net", SRSReason.MALFORMED),
        ("SRS1=abcd@srs.example.net", SRSReason.MALFORMED),
        ("SRS1=abcd=fw1.example@srs.example.net", SRSReason.MALFORMED),
        ("SRS1=abcd==x@srs.example.net", SRSReason.MALFORMED),
        (_forge(GOOD, 1, "AAAA"), SRSReason.BAD_HASH),  # a guessed hash
        (_forge(GOOD, 1, "abc"), SRSReason.HASH_TOO_SHORT),
        (_forge(GOOD, 2, "MD"), SRSReason.BAD_HASH),  # another valid timestamp, same hash
        (_forge(GOOD, 2, "MF"), SRSReason.EXPIRED),  # from the future (libsrs2 wraps it)
        (_forge(GOOD, 2, "M1"), SRSReason.BAD_TIMESTAMP),
        (_forge(GOOD, 2, "M"), SRSReason.BAD_TIMESTAMP),
        (_forge(GOOD, 2, "MEE"), SRSReason.BAD_TIMESTAMP),
        (_forge(GOOD, 2, "LA"), SRSReason.EXPIRED),
        (_forge(GOOD, 3, "evil.example"), SRSReason.BAD_HASH),  # another domain
        (_forge(GOOD, 4, "mallory"), SRSReason.BAD_HASH),  # another user
        (GOOD.replace("@", "\r\nRCPT TO:<x@y>@"), SRSReason.BAD_CHARACTER),
        (GOOD.replace("alice", "ali ce"), SRSReason.BAD_CHARACTER),
        (GOOD.replace("alice", "ali\x00ce"), SRSReason.BAD_CHARACTER),
        (GOOD.replace("alice", "ali>ce"), SRSReason.BAD_CHARACTER),
        (GOOD.replace("alice", "\udcff"), SRSReason.BAD_CHARACTER),
        (GOOD.replace("alice", "a" * 600), SRSReason.TOO_LONG),
    ],
)
def test_hostile_addresses_are_refused_with_their_reason(address: str, reason: SRSReason) -> None:
    with pytest.raises(SRSError) as caught:
        srs().reverse(address)
    assert caught.value.reason is reason


def test_a_user_part_may_hold_separators() -> None:
    ours = srs()
    for sender in (
        "a=b@x.example",
        "=@x.example",
        "SRS0@x.example",
        "srs1=@x.example",
        "SRS0=x@y.example",
    ):
        address = ours.forward(sender)
        back = ours.reverse(address)
        if sender.upper().startswith("SRS0="):
            assert back.upper() == sender.upper()  # SRS1 points back, the tag in upper case
        else:
            assert back == sender


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("alice", SRSReason.NO_DOMAIN),
        ("@a.example", SRSReason.MALFORMED),
        ("alice@", SRSReason.MALFORMED),
        ("al ice@a.example", SRSReason.BAD_CHARACTER),
    ],
)
def test_senders_that_cannot_be_rewritten(sender: str, reason: SRSReason) -> None:
    with pytest.raises(SRSError) as caught:
        srs().forward(sender)
    assert caught.value.reason is reason


def test_is_srs_address() -> None:
    assert is_srs_address("SRS0=x")
    assert is_srs_address("srs1+x")
    assert not is_srs_address("SRS0x")
    assert not is_srs_address("SRS")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secrets": ()},
        {"secrets": (b"",)},
        {"separator": "/"},
        {"hash_length": 0},
        {"hash_length": 28},
        {"hash_length": 4, "hash_min": 5},
        {"max_age": 1024},
        {"domain": ""},
        {"domain": "a@b"},
    ],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"domain": "srs.example.net", "secrets": (SECRET,), **kwargs}
    with pytest.raises(ValueError, match=r"secret|separator|hash|max_age|SRS domain"):
        SRS(**arguments)  # type: ignore[arg-type]
