"""What changed since delivery: which recorded Authentication-Results count as ours, and the
comparison of their results with today's."""

from __future__ import annotations

import pytest
from tests.analyze.helpers import analyze, change

from mailwarden.analyze import recorded_results
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
