"""What changed since delivery: which recorded Authentication-Results count as ours, and the
comparison of their results with today's."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.analyze.helpers import DATA, NOW, analyze, change, resolver

from mailwarden.analyze import analyze_message, recorded_results
from mailwarden.dns import StaticResolver
from mailwarden.message import read_message

OURS = "Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=a@example.com\r\n"
THEIRS = "Authentication-Results: mx.example.org; spf=fail smtp.mailfrom=a@example.com\r\n"
BROKEN = "Authentication-Results: ;;;\r\n"
RECEIVED = "Received: from a by b; Mon, 23 Nov 2026 10:00:00 +0000\r\n"


def message(*fields: str) -> bytes:
    return ("".join(fields) + "From: a@example.com\r\n\r\nbody\r\n").encode()


@pytest.mark.parametrize(
    ("fields", "trusted", "boundary_field", "expected"),
    [
        ((OURS, THEIRS), ["mx.example.net"], None, ["pass"]),  # only the trusted authserv-id
        ((THEIRS, OURS), ["example.net"], None, ["pass"]),  # a host below a trusted name
        ((THEIRS, OURS), [], None, ["fail"]),  # nothing trusted: the topmost field
        ((BROKEN, OURS), [], None, ["pass"]),  # an unreadable field is skipped
        ((RECEIVED, OURS), ["mx.example.net"], 0, []),  # below the boundary: not ours
        ((OURS, RECEIVED, OURS), ["mx.example.net"], 1, ["pass"]),
        ((OURS, OURS), ["mx.example.net"], None, ["pass", "pass"]),
        ((RECEIVED,), ["mx.example.net"], None, []),
    ],
)
def test_recorded_results(
    fields: tuple[str, ...], trusted: list[str], boundary_field: int | None, expected: list[str]
) -> None:
    infos = recorded_results(read_message(message(*fields)), trusted, boundary_field)
    assert [info.result for info in infos] == expected


async def test_forged_hop_listed_relay_and_recorded_results() -> None:
    data = await analyze("forged_hop.eml")
    now = data["reverify"]
    assert now["mail_from"] == "ceo@example.org"  # from our recorded smtp.mailfrom
    assert now["spf"]["result"] == "fail"
    assert now["dkim"] == []
    assert now["dmarc"]["result"] == "fail"
    relay = next(r for r in now["relays"] if r["ip"] == "203.0.113.77")
    assert relay["listed"] == ["testbl"]
    assert relay["dnsbl"][0]["codes"] == ["127.0.0.2"]
    assert "listed for spam" in relay["dnsbl"][0]["reason"]
    assert relay["iprev"]["result"] == "fail"
    # the forged Authentication-Results below the boundary (spf=pass) is not "then"
    assert change(data, "spf")["then"] == "fail"
    assert change(data, "dmarc")["then"] == "fail"
    assert "1 relay(s) listed" in data["summary"]


# -- DMARC now: not evaluated without SPF, and the right cause of a change (issue 12 item 8) ----

NO_ADDRESS = (
    "Received: from mail.example.com by mx.example.net; Mon, 23 Nov 2026 10:00:01 +0000\r\n"
    "Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=a@example.com;\r\n"
    " dmarc=pass header.from=example.com\r\n"
    "Return-Path: <a@example.com>\r\n"
)


async def test_no_client_address_leaves_dmarc_not_evaluated_never_fail() -> None:
    """No address in the Received chain: SPF cannot be checked, and without an aligned DKIM
    pass DMARC cannot be told either; p=reject must not make that a fail."""
    parsed = read_message(message(NO_ADDRESS))
    data = (await analyze_message(parsed, resolver(), clock=lambda: NOW)).to_dict()
    now = data["reverify"]
    assert (now["ip"], now["spf"]) == (None, None)
    dmarc = now["dmarc"]
    assert dmarc["result"] != "fail"
    assert (dmarc["evaluated"], dmarc["reason_code"]) == (False, "spf-not-evaluated")
    assert dmarc["disposition"] == "none"
    assert "SPF not checked" in dmarc["reason"]
    assert "dmarc=not evaluated" in data["summary"]
    dmarc_change = change(data, "dmarc")
    assert (dmarc_change["then"], dmarc_change["now"], dmarc_change["changed"]) == (
        "pass",
        None,
        False,
    )
    assert "not evaluated" in dmarc_change["note"]


async def test_given_an_address_the_same_message_fails_dmarc() -> None:
    parsed = read_message(message(NO_ADDRESS))
    analysis = await analyze_message(parsed, resolver(), ip="203.0.113.9", clock=lambda: NOW)
    assert analysis.reverification is not None
    assert analysis.reverification.dmarc.result.value == "fail"  # SPF fail, nothing aligned
    assert analysis.reverification.dmarc.evaluated


async def test_an_aligned_dkim_pass_needs_no_spf() -> None:
    data = await analyze("gmail_style.eml", ip=None)
    assert data["reverify"]["dmarc"]["result"] == "pass"
    analysis = await analyze_message(
        read_message((DATA / "gmail_style.eml").read_bytes()),
        resolver(),
        trusted_hosts=["elsewhere.example"],  # nothing trusted: the topmost hop, no address
        clock=lambda: NOW,
    )
    assert analysis.reverification is not None
    assert analysis.reverification.spf is None
    assert analysis.reverification.dmarc.result.value == "pass"  # DKIM alone passes


def zone_without(line_start: str, tmp_path: Path) -> StaticResolver:
    text = (DATA / "zone.txt").read_text()
    kept = [line for line in text.splitlines() if not line.startswith(line_start)]
    assert len(kept) == len(text.splitlines()) - 1
    path = tmp_path / "zone.txt"
    path.write_text("\n".join(kept) + "\n")
    return StaticResolver.from_master_files([path])


async def test_a_dmarc_record_gone_is_said_so(tmp_path: Path) -> None:
    """postfix_chain.eml: then dmarc=pass; now the record of example.com is gone. A DKIM key
    was rotated away too, but that is not why DMARC changed."""
    data = await analyze(
        "postfix_chain.eml",
        zone_without('_dmarc                IN TXT  "v=DMARC1; p=reject', tmp_path),
    )
    dmarc = change(data, "dmarc", "example.com")
    assert (dmarc["then"], dmarc["now"], dmarc["changed"]) == ("pass", "none", True)
    assert dmarc["note"] == "the DMARC record of example.com is gone since (no record now)"
    assert "follows from the SPF and DKIM changes" not in dmarc["note"]


async def test_dmarc_following_spf_and_dkim_changes_says_so(tmp_path: Path) -> None:
    """Another client address (SPF fails now) and the key of the passing signature gone: DMARC
    fails now because of those changes, and the note says so."""
    dns = zone_without("sel2025._domainkey", tmp_path)
    data = await analyze("postfix_chain.eml", dns, ip="203.0.113.9", helo="x.example")
    assert change(data, "spf")["changed"] is True
    assert change(data, "dkim", "d=example.com s=sel2025")["changed"] is True
    dmarc = change(data, "dmarc")
    assert (dmarc["then"], dmarc["now"]) == ("pass", "fail")
    assert dmarc["note"] == "follows from the SPF and DKIM changes above"


async def test_an_unusable_dmarc_record_is_said_so(tmp_path: Path) -> None:
    text = (DATA / "zone.txt").read_text()
    broken = text.replace("v=DMARC1; p=reject; rua=mailto:dmarc@example.com", "v=DMARC1; p=maybe")
    assert broken != text
    (tmp_path / "zone.txt").write_text(broken)
    data = await analyze(
        "postfix_chain.eml", StaticResolver.from_master_files([tmp_path / "zone.txt"])
    )
    dmarc = change(data, "dmarc", "example.com")
    assert (dmarc["then"], dmarc["now"]) == ("pass", "none")
    assert dmarc["note"].startswith("the DMARC record changed since: record at example.com")


async def test_a_dmarc_change_without_spf_or_dkim_changes_blames_no_one_of_them() -> None:
    recorded = (
        "Received: from mail.example.com (mail.example.com [192.0.2.10]) by mx.example.net;"
        " Mon, 23 Nov 2026 10:00:01 +0000\r\n"
        "Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=a@example.com;\r\n"
        " dmarc=fail header.from=example.com\r\n"
        "Return-Path: <a@example.com>\r\n"
    )
    parsed = read_message(message(recorded))
    data = (await analyze_message(parsed, resolver(), clock=lambda: NOW)).to_dict()
    assert change(data, "spf")["changed"] is False
    dmarc = change(data, "dmarc")
    assert (dmarc["then"], dmarc["now"], dmarc["changed"]) == ("fail", "pass", True)
    assert dmarc["note"].startswith("no SPF or DKIM result changed")
