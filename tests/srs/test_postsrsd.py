"""Interop with the real postsrsd (libsrs2's srs2.c inside): with the same secret file, our
rewritten addresses equal postsrsd's, and each reverses the other's, SRS0 and SRS1 alike.

Debian ships postsrsd 1.x (TCP lookup tables); postsrsd 2.x speaks socketmap with the same
srs2.c, so the addresses are the same (the socketmap side is tested against Postfix itself).
The day may change between two lookups: every comparison is retried once then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.srs.postsrsd import PostSRSd, postsrsd

from mailwarden.srs import SRS, SRSError, SRSReason, read_secrets

DOMAIN = "srs.example.net"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("srs") / "srs.secret"
    path.write_bytes(b"first secret, with spaces\nold-secret\n")
    return path


@pytest.fixture(scope="module")
def daemon(secret_file: Path) -> Iterator[PostSRSd]:
    with postsrsd(secret_file, DOMAIN) as running:
        yield running


@pytest.fixture
def ours(secret_file: Path) -> SRS:
    return SRS(DOMAIN, read_secrets(secret_file))


def same_day(check: Callable[[], None]) -> None:
    """Run a comparison; if the day turned meanwhile, run it once more."""
    day = int(time.time()) // 86400
    try:
        check()
    except AssertionError:
        if int(time.time()) // 86400 == day:
            raise
        check()


SENDERS = [
    "alice@a.example",
    "Alice.Smith+tag@Sub.A.Example",
    "a=b@x.example",
    "o'brien@x.example",
    "x@[192.0.2.1]",
    "üser@bücher.example",
]


@pytest.mark.parametrize("sender", SENDERS)
def test_srs0_equals_postsrsd(daemon: PostSRSd, ours: SRS, sender: str) -> None:
    def check() -> None:
        code, theirs = daemon.forward(sender)
        assert code == 200
        assert ours.forward(sender) == theirs
        assert ours.reverse(theirs) == sender
        assert daemon.reverse(ours.forward(sender)) == (200, sender)

    same_day(check)


def test_srs1_equals_postsrsd(daemon: PostSRSd, ours: SRS) -> None:
    """An SRS0 address of another forwarder becomes SRS1 (postsrsd cannot reverse it, so it
    rewrites it), the same at both; a bounce to it reverses to the first forwarder."""
    other = SRS("fw1.example", (b"someone else's secret",))

    def check() -> None:
        first = other.forward("alice@a.example")
        code, theirs = daemon.forward(first)
        assert code == 200
        assert theirs.startswith("SRS1=")
        assert ours.forward(first) == theirs
        assert ours.reverse(theirs) == first
        assert daemon.reverse(ours.forward(first)) == (200, first)
        # and SRS1 of SRS1: re-signed, still pointing at fw1.example
        third = SRS("fw3.example", (b"third",)).forward(theirs)
        code, again = daemon.forward(third)
        assert (code, again) == (200, ours.forward(third))

    same_day(check)


def test_lower_cased_addresses_reverse_at_both(daemon: PostSRSd, ours: SRS) -> None:
    address = ours.forward("Alice@A.Example").lower()
    assert daemon.reverse(address) == (200, "alice@a.example")
    assert ours.reverse(address) == "alice@a.example"


def test_second_secret_verifies_at_both(daemon: PostSRSd, secret_file: Path) -> None:
    old = SRS(DOMAIN, (b"old-secret",)).forward("alice@a.example")
    assert daemon.reverse(old) == (200, "alice@a.example")
    assert SRS(DOMAIN, read_secrets(secret_file)).reverse(old) == "alice@a.example"


def test_forgeries_are_refused_by_both(daemon: PostSRSd, ours: SRS) -> None:
    good = ours.forward("alice@a.example")
    local, _, domain = good.partition("@")
    parts = local.split("=")
    stale_stamp = SRS(DOMAIN, (b"x",), clock=lambda: time.time() - 30 * 86400).forward("a@b.c")
    stale = "=".join([*parts[:2], stale_stamp.split("=")[2], *parts[3:]]) + "@" + domain
    for forged, reason in [
        ("=".join([parts[0], "AAAA", *parts[2:]]) + "@" + domain, SRSReason.BAD_HASH),
        ("=".join([*parts[:4], "mallory"]) + "@" + domain, SRSReason.BAD_HASH),
        (stale, SRSReason.EXPIRED),
    ]:
        code, _ = daemon.reverse(forged)
        assert code == 500
        with pytest.raises(SRSError) as caught:
            ours.reverse(forged)
        assert caught.value.reason is reason


def test_our_own_domain_is_left_alone_by_both(daemon: PostSRSd, ours: SRS) -> None:
    assert daemon.forward(f"bob@{DOMAIN}") == (200, f"bob@{DOMAIN}")
    assert ours.forward(f"bob@{DOMAIN}") == f"bob@{DOMAIN}"
