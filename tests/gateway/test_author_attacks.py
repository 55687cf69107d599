"""The author (RFC 5322 From) cannot be made ambiguous: attacks over real sockets.

bank.example is at p=reject; the attacker at 127.0.0.1 is not allowed to send for it. Each
variant below got 250 before this rule existed (DMARC ended in permerror, "not evaluated",
and the policy accepted); now each is refused, with 550 5.6.0 for what does not parse and
550 5.7.1 for what has no single author, or refused by bank.example's DMARC policy when the
variant still names bank.example unambiguously. Legitimate variants still pass.

Attacker's variants: a trailing dot on the domain; the same From field twice; a second empty
From; two mailboxes from two domains in one field, or in two fields; a stray `;` or `>` after
the address; a NUL byte in or near the field; a header line without a colon before it; an
empty From; no From at all (only Sender, Resent-From or Reply-To); comments, quoting, case,
folding, encoded words, groups and source routes around the address; 8-bit bytes in the From
field without SMTPUTF8; plus generated From fields and header sections (hypothesis).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.gateway.attack import BODY, Outcome, named, send, signed, zone_data
from tests.gateway.attack import settings as gateway_settings

from mailwarden.dns import StaticResolver
from mailwarden.pipeline import build
from mailwarden.policy import Action, AuthorHandling

OK = 250
REFUSED = 550

SPOOFS: list[tuple[str, bytes, str]] = [
    ("trailing dot", b"From: CEO <ceo@bank.example.>\r\n", "5.7.1 Rejected by the DMARC"),
    ("twice", b"From: ceo@bank.example\r\nFrom: ceo@bank.example\r\n", "5.7.1 Message refused"),
    ("second empty", b"From: ceo@bank.example\r\nFrom:\r\n", "5.7.1 Message refused"),
    ("two domains, one field", b"From: ceo@bank.example, x@a.example\r\n", "5.7.1"),
    ("two domains, two fields", b"From: x@a.example\r\nFrom: ceo@bank.example\r\n", "5.7.1"),
    ("stray semicolon", b"From: ceo@bank.example;\r\n", "5.6.0 Message refused"),
    ("stray bracket", b"From: ceo@bank.example>\r\n", "5.6.0 Message refused"),
    ("NUL in the field", b"From: ceo@bank.example\x00\r\n", "5.6.0 Message refused: NUL"),
    ("NUL near the field", b"X-A: \x00\r\nFrom: ceo@bank.example\r\n", "5.6.0 Message refused"),
    ("line without colon", b"Hello there\r\nFrom: ceo@bank.example\r\n", "5.6.0 Message refused"),
    ("empty From", b"From:\r\n", "5.6.0 Message refused"),
    ("blank From", b"From:   \r\n", "5.6.0 Message refused"),
    ("only Sender", b"Sender: ceo@bank.example\r\n", "5.7.1 Message refused: message has no"),
    ("only Resent-From", b"Resent-From: ceo@bank.example\r\n", "5.7.1 Message refused"),
    ("comment in the domain", b"From: ceo@(x)bank.example\r\n", "5.7.1 Rejected by the DMARC"),
    ("quoted local part", b'From: "ceo"@bank.example\r\n', "5.7.1 Rejected by the DMARC"),
    ("other address shown", b'From: "alice@a.example" <ceo@bank.example>\r\n', "DMARC"),
    ("encoded name", b"From: =?utf-8?q?alice=40a=2Eexample?= <ceo@bank.example>\r\n", "DMARC"),
    ("upper case", b"From: CEO@BANK.EXAMPLE\r\n", "5.7.1 Rejected by the DMARC"),
    ("folded", b"From:\r\n ceo@bank.example\r\n", "5.7.1 Rejected by the DMARC"),
    ("group", b"From: Board: ceo@bank.example;\r\n", "5.7.1 Rejected by the DMARC"),
    ("source route", b"From: <@a.example:ceo@bank.example>\r\n", "5.7.1 Rejected by the DMARC"),
    ("domain literal", b"From: ceo@[198.51.100.1]\r\n", "5.7.1 Message refused"),
    ("encoded domain", b"From: ceo@=?utf-8?b?YmFuay5leGFtcGxl?=\r\n", "5.6.0 Message refused"),
    ("8-bit, no SMTPUTF8", "From: Cé <ceo@bank.example>\r\n".encode(), "5.6.7 Message refused"),
    ("double dot", b"From: ceo@bank..example\r\n", "5.6.0 Message refused"),
]


@pytest.mark.parametrize(
    ("header", "expected"), [(h, e) for _, h, e in SPOOFS], ids=[n for n, _, _ in SPOOFS]
)
async def test_spoof_variants_are_refused(tmp_path: Path, header: bytes, expected: str) -> None:
    outcome = await send(tmp_path, signed(header))
    assert outcome.code == REFUSED, outcome.text
    assert expected in outcome.text
    assert outcome.delivered == []


LEGITIMATE: list[tuple[str, bytes, bool]] = [
    ("display name", b"From: Alice Example <alice@a.example>\r\n", False),
    ("encoded word", b"From: =?utf-8?q?Al=C3=AFce?= <alice@a.example>\r\n", False),
    ("group", b"From: Team: alice@a.example;\r\n", False),
    ("comment", b"From: alice@a.example (Alice)\r\n", False),
    ("folded", b"From: Alice\r\n <alice@a.example>\r\n", False),
    ("SMTPUTF8", "From: Alïce <alice@a.example>\r\n".encode(), True),
    ("8-bit Subject", b"From: alice@a.example\r\nX-Legacy: caf\xe9\r\n", False),
]


@pytest.mark.parametrize(
    ("header", "smtputf8"), [(h, u) for _, h, u in LEGITIMATE], ids=[n for n, _, _ in LEGITIMATE]
)
async def test_legitimate_authors_still_pass(tmp_path: Path, header: bytes, smtputf8: bool) -> None:
    outcome = await send(tmp_path, signed(header), mail_from="alice@a.example", smtputf8=smtputf8)
    assert outcome.code == OK, outcome.text
    [delivered] = outcome.delivered
    [results] = named(delivered, "Authentication-Results")
    assert "dmarc=pass" in results


async def test_the_strictest_mode_never_accepts_a_failing_reject_domain(tmp_path: Path) -> None:
    """Relaxed to RFC 9989 §5.3.1's MAY, several authors are each evaluated: a.example
    passes, bank.example fails under p=reject, and the strictest result refuses."""
    config = gateway_settings(several_authors=AuthorHandling.STRICTEST)
    for header in (
        b"From: alice@a.example, ceo@bank.example\r\n",
        b"From: alice@a.example\r\nFrom: ceo@bank.example\r\n",
    ):
        outcome = await send(tmp_path, signed(header), mail_from="alice@a.example", config=config)
        assert outcome.code == REFUSED
        assert "5.7.1 Rejected by the DMARC policy of bank.example" in outcome.text
    # a message with no author at all is refused in every mode
    outcome = await send(tmp_path, signed(b"Sender: a@a.example\r\n"), config=config)
    assert outcome.code == REFUSED
    # and several authors that all pass are accepted in this mode
    header = b"From: alice@a.example, bob@a.example\r\n"
    outcome = await send(tmp_path, signed(header), mail_from="alice@a.example", config=config)
    assert outcome.code == OK, outcome.text


# -- generated attacks, through the pipeline (fast) and through the gateway (real sockets) --

WRAPPERS = [
    "{}",
    "<{}>",
    "CEO <{}>",
    '"alice@a.example" <{}>',
    "=?utf-8?q?x?= <{}>",
    "{} (comment)",
    "Group: {};",
    "<@a.example:{}>",
]
NOISE = st.sampled_from(["", ";", ">", ",", ", x@a.example", ",,", " ", "\t", "\x00", "."])
DOMAIN = st.sampled_from(
    ["bank.example", "BANK.example", "bank.example.", "bank.example..", "(c)bank.example"]
)


@st.composite
def spoofed_headers(draw: st.DrawFn) -> bytes:
    """A header section whose From names bank.example somehow, with junk around it."""
    local = draw(st.sampled_from(["ceo", "CEO", '"ceo"']))
    address = f"{local}@{draw(DOMAIN)}"
    value = draw(st.sampled_from(WRAPPERS)).format(address) + draw(NOISE)
    fields = [f"From: {value}".encode()]
    for extra in draw(
        st.lists(
            st.sampled_from(
                [
                    b"From: ceo@bank.example",
                    b"From:",
                    b"no colon",
                    b"X-A: \x00",
                    b"Sender: x@a.example",
                    b"From: alice@a.example",
                    b"Subject: hi",
                    b" continuation",
                ]
            ),
            max_size=2,
        )
    ):
        fields.insert(draw(st.integers(0, len(fields))), extra)
    return b"\r\n".join(fields) + b"\r\n"


async def _verdict(header: bytes) -> Action:
    pipeline = build(gateway_settings(), StaticResolver(zone_data()))
    verdict = await pipeline.check(
        signed(header), ip="127.0.0.1", helo="mail.a.example", mail_from="ceo@bank.example"
    )
    return verdict.policy.action


@settings(max_examples=300, deadline=None)
@given(spoofed_headers())
def test_generated_spoofs_are_never_accepted(header: bytes) -> None:
    assert asyncio.run(_verdict(header)) is Action.REJECT


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spoofed_headers())
def test_generated_spoofs_are_refused_over_smtp(tmp_path: Path, header: bytes) -> None:
    outcome: Outcome = asyncio.run(send(tmp_path, signed(header)))
    assert outcome.code == REFUSED, (header, outcome.text)
    assert outcome.delivered == []


def test_body_is_the_same_for_every_variant() -> None:
    """The variants differ only in their header (the body and other fields are shared)."""
    assert all(signed(h).endswith(BODY) for _, h, _ in SPOOFS)
