"""The forwarding rules: the alias file, each recipient's route, the envelope sender of what
is forwarded, and when DMARC will fail anyway."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mailwarden.dmarc import Discovery, DMARCPolicy, DMARCReason, DMARCResult, DMARCStatus
from mailwarden.srs import (
    SRS,
    AliasError,
    Aliases,
    Forwarder,
    RouteKind,
    SRSReason,
    dmarc_risk,
    ensure_secret_file,
    read_secrets,
)

NOW = 1_714_521_600
ALIASES = """\
# forwarding addresses of b.example
alice@b.example: alice@gmail.example
Bob@B.Example    bob@b.example, robert@elsewhere.example   # keeps a copy here
carol@b.example:carol@one.example,carol@two.example , carol@one.example
"""


@pytest.mark.parametrize(
    ("address", "targets"),
    [
        ("alice@b.example", ("alice@gmail.example",)),
        ("ALICE@b.example", ("alice@gmail.example",)),
        ("bob@b.example", ("bob@b.example", "robert@elsewhere.example")),
        ("carol@b.example", ("carol@one.example", "carol@two.example")),  # duplicate dropped
        ("dave@b.example", None),
    ],
)
def test_alias_file(address: str, targets: tuple[str, ...] | None) -> None:
    assert Aliases.parse(ALIASES).targets(address) == targets


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("alice@b.example:", "has no target"),
        ("alice@b.example", "has no target"),
        ("alice: bob@x.example", "not an address"),
        ("alice@b.example: bob", "not an address"),
        ("alice@b.example: bob@x.example\nALICE@B.EXAMPLE: c@d.example", "listed twice"),
        ("alice@b.example: <bob@x.example>", "not a plain address"),
        ("alice@b.example: bob@x..example", "not an address"),
        ("a\x00@b.example: bob@x.example", "not a plain address"),
        ("alice@b.example: " + "x" * 300 + "@x.example", "longer than"),
        ("alice@b.example: " + ", ".join(f"u{i}@x.example" for i in range(1001)), "more than"),
    ],
)
def test_bad_alias_files_name_the_line(text: str, reason: str) -> None:
    with pytest.raises(AliasError, match=reason) as caught:
        Aliases.parse("# first line\n" + text, "aliases.txt")
    assert str(caught.value).startswith("aliases.txt, line ")


def test_alias_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "aliases"
    path.write_text(ALIASES)
    assert len(Aliases.load(path)) == 3
    with pytest.raises(AliasError, match="cannot read"):
        Aliases.load(tmp_path / "missing")
    path.write_bytes(b"a@b.example: \xff@c.example\n")
    with pytest.raises(AliasError, match="not UTF-8"):
        Aliases.load(path)


SRS_B = SRS("srs.b.example", (b"secret",), clock=lambda: NOW)
FORWARDER = Forwarder(SRS_B, Aliases.parse(ALIASES), ["b.example"])


def test_routes() -> None:
    route = FORWARDER.route("alice@b.example")
    assert (route.kind, route.remote, route.local) == (
        RouteKind.FORWARD,
        ("alice@gmail.example",),
        (),
    )
    route = FORWARDER.route("bob@b.example")
    assert (route.remote, route.local) == (("robert@elsewhere.example",), ("bob@b.example",))
    assert FORWARDER.route("dave@b.example").kind is RouteKind.LOCAL
    bounce = FORWARDER.route(SRS_B.forward("zoe@z.example"))
    assert (bounce.kind, bounce.remote) == (RouteKind.BOUNCE, ("zoe@z.example",))
    here = FORWARDER.route(SRS_B.forward("SRS0=x=y=z.example=u@fw.example"))
    assert here.kind is RouteKind.BOUNCE
    assert here.remote[0].startswith("SRS0=")
    assert FORWARDER.route("postmaster@srs.b.example").kind is RouteKind.LOCAL
    forged = FORWARDER.route("SRS0=AAAA=ME=z.example=zoe@srs.b.example")
    assert (forged.kind, forged.reason_code) == (RouteKind.REFUSE, SRSReason.BAD_HASH)
    expired = Forwarder(
        replace(SRS_B, clock=lambda: NOW + 30 * 86400), Aliases({}), ["b.example"]
    ).route(SRS_B.forward("zoe@z.example"))
    assert (expired.kind, expired.reason_code) == (RouteKind.REFUSE, SRSReason.EXPIRED)


@pytest.mark.parametrize(
    ("mail_from", "rewritten"),
    [
        ("", False),  # bounces keep the null sender
        ("carol@b.example", False),  # our own domain: our SPF covers it
        ("x@srs.b.example", False),
        ("zoe@z.example", True),
        ("Zoe@Z.Example", True),
    ],
)
def test_sender(mail_from: str, rewritten: bool) -> None:
    sender = FORWARDER.sender(mail_from)
    if rewritten:
        assert sender.startswith("SRS0=")
        assert sender.endswith("@srs.b.example")
        assert SRS_B.reverse(sender) == mail_from
    else:
        assert sender == mail_from


def verdict(policy: DMARCPolicy | None, aligned: tuple[str, ...]) -> DMARCResult:
    return DMARCResult(
        DMARCStatus.PASS,
        "aligned",
        DMARCReason.ALIGNED,
        "a.example",
        Discovery.TREE_WALK,
        requested_policy=policy,
        dkim_aligned=aligned,
        spf_aligned=True,
    )


@pytest.mark.parametrize(
    ("policy", "aligned", "risky"),
    [
        (DMARCPolicy.REJECT, (), True),
        (DMARCPolicy.REJECT, ("a.example",), False),
        (DMARCPolicy.QUARANTINE, (), False),
        (DMARCPolicy.NONE, (), False),
        (None, (), False),
    ],
)
def test_dmarc_risk(policy: DMARCPolicy | None, aligned: tuple[str, ...], risky: bool) -> None:
    warning = dmarc_risk(verdict(policy, aligned))
    assert (warning is not None) is risky
    if warning:
        assert "a.example" in warning
        assert "p=reject" in warning


def test_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "srs.secret"
    made = ensure_secret_file(path)
    assert len(made) == 1
    assert len(made[0]) >= 32
    assert (path.stat().st_mode & 0o777) == 0o600
    assert ensure_secret_file(path) == made  # kept
    path.write_bytes(b"new\r\n\r\nold\n")
    assert read_secrets(path) == (b"new", b"old")
    path.write_bytes(b"\n\n")
    with pytest.raises(ValueError, match="no secret"):
        read_secrets(path)
