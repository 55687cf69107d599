"""How the lab recognises what became of a message: swaks transcripts, transaction log lines,
Authentication-Results, and the outcome compared with what each scenario expects."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lab.scenarios import (
    SCENARIOS,
    Expectation,
    LogRecord,
    Observation,
    Outcome,
    Result,
    auth_results,
    judge,
    outcome_of,
    refusal,
    swaks_lines,
)

TRANSCRIPT = """\
=== Trying 10.99.2.25:25...
=== Connected to 10.99.2.25.
<-  220 mx.b.example ESMTP mailwarden
 -> EHLO mail.a.example
<-  250-mx.b.example
<-  250 STARTTLS
 -> STARTTLS
<-  220 2.0.0 Ready to start TLS
=== TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256
 ~> MAIL FROM:<alice@a.example>
<~  250 2.1.0 Ok
 ~> RCPT TO:<bob@b.example>
<~* 554 5.7.1 Service unavailable; client blocked (RBL_LAB_LISTED)
 ~> QUIT
<~  221 2.0.0 Bye
*** Remote host closed connection unexpectedly.
"""

GATEWAY_RECORD: dict[str, Any] = {
    "time": "2026-12-01T22:55:43.160+00:00",
    "type": "transaction",
    "client": {"ip": "10.99.66.6", "port": 58077},
    "helo": "mail.a.example",
    "tls": None,
    "mail_from": "alice@a.example",
    "rcpts": ["bob@b.example"],
    "rejected_rcpts": [],
    "reply": "550 5.7.1 Rejected by the DMARC policy of a.example",
    "score": 13.5,
    "symbols": ["SPF_FAIL(3)", "DKIM_NONE(0)", "DMARC_POLICY_REJECT(8)", "IPREV_PERMERROR(1)"],
    "reasons": ["DMARC policy of a.example is reject and the message failed DMARC"],
    "spf": "fail",
    "dkim": [],
    "dmarc": "fail",
}

DELIVERED = (
    b"Return-Path: <alice@a.example>\r\n"
    b"Authentication-Results: mx.b.example; iprev=pass policy.iprev=10.99.1.25;\r\n"
    b" spf=pass smtp.mailfrom=alice@a.example; spf=fail smtp.helo=mail.a.example;\r\n"
    b" dkim=fail header.d=a.example; dkim=pass header.d=a.example; dkim=neutral\r\n"
    b" header.d=x.example; dmarc=pass header.from=a.example\r\n"
    b"Authentication-Results: mx.lists.c.example; arc=fail; spf=softfail\r\n"
    b"Authentication-Results: mx.b.example.evil; dmarc=fail\r\n"
    b"From: Alice <alice@a.example>\r\n"
    b"Subject: hi\r\n\r\nbody\r\n"
)


def test_swaks_markers_are_read_longest_first() -> None:
    markers = [marker for marker, _ in swaks_lines(TRANSCRIPT)]
    assert markers == [
        "===", "===", "<-", "->", "<-", "<-", "->", "<-", "===", "~>", "<~", "~>", "<~*",
        "~>", "<~", "***",
    ]  # fmt: skip
    assert dict(swaks_lines(TRANSCRIPT))["<~*"].startswith("554 5.7.1")


@pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        (TRANSCRIPT, "554 5.7.1 Service unavailable; client blocked (RBL_LAB_LISTED)"),
        ("<** 550 5.7.1 Rejected\n", "550 5.7.1 Rejected"),
        ("*** Error connecting to 10.99.1.25:587\n", "Error connecting to 10.99.1.25:587"),
        ("<-  250 2.0.0 Ok\n", ""),
        ("", ""),
    ],
)
def test_refusal_is_the_first_error(transcript: str, expected: str) -> None:
    assert refusal(transcript) == expected


def test_a_gateway_record_is_read() -> None:
    record = LogRecord.parse(GATEWAY_RECORD)
    assert (record.kind, record.client, record.helo, record.tls) == (
        "transaction",
        "10.99.66.6",
        "mail.a.example",
        "",
    )
    assert record.results() == {
        "spf": "fail",
        "dmarc": "fail",
        "dkim": "none",
        "iprev": "permerror",
    }


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"dkim": ["fail:a.example", "pass:a.example"]}, {"dkim": "pass"}),
        ({"dkim": ["temperror:a.example"]}, {"dkim": "temperror"}),
        (
            {
                "spf": None,
                "dmarc": None,
                "symbols": [],
                "rejected_rcpts": [{"reply": "554 (RBL_X)"}],
            },
            {"dnsbl": "listed"},
        ),
        ({"spf": None, "dmarc": None, "symbols": ["RBL_LAB_LISTED(10)"]}, {"dnsbl": "listed"}),
        ({"spf": None, "dmarc": None, "symbols": None}, {}),
    ],
)
def test_results_from_the_log(changes: dict[str, Any], expected: dict[str, str]) -> None:
    record = {**GATEWAY_RECORD, "symbols": [], **changes}
    found = LogRecord.parse(record).results()
    for key, value in expected.items():
        assert found.get(key) == value
    if not expected:
        assert found == {}


def test_a_submission_record_is_read() -> None:
    record = LogRecord.parse(
        {
            "type": "transaction",
            "tls": {"version": "TLSv1.3", "cipher": "x"},
            "auth": "alice@a.example",
            "from": ["alice@a.example"],
            "dkim": "signed",
            "downstream": ["250 2.0.0 Ok: queued as 8AC7C20EF91"],
        }
    )
    assert (record.tls, record.auth, record.authors, record.signed, record.dkim) == (
        "TLSv1.3",
        "alice@a.example",
        ("alice@a.example",),
        "signed",
        (),
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    ["type", "client", "helo", "tls", "rcpts", "rejected_rcpts", "reply", "spf", "dkim",
     "dmarc", "symbols", "reasons", "score", "auth", "from", "downstream", "mail_from"]
)  # fmt: skip


@given(st.dictionaries(KEYS | st.text(max_size=5), JSON, max_size=10))
def test_any_log_line_is_read_without_error(record: dict[str, Any]) -> None:
    parsed = LogRecord.parse(json.loads(json.dumps(record)))
    parsed.results()
    assert all(isinstance(s, str) for s in parsed.symbols + parsed.refused_rcpts + parsed.dkim)


def test_auth_results_reads_only_the_receivers_own_fields() -> None:
    assert auth_results(DELIVERED) == {
        "iprev": "pass",
        "spf": "pass",  # MAIL FROM's; the HELO identity's fail is not what DMARC reads
        "dkim": "pass",  # one signature verified
        "dmarc": "pass",
    }
    assert auth_results(DELIVERED, "mx.lists.c.example") == {"arc": "fail", "spf": "softfail"}
    assert auth_results(b"\x00 not a message") == {}
    assert auth_results(b"Authentication-Results: ;;;\r\n\r\n") == {}


def _observation(**changes: Any) -> Observation:
    values: dict[str, Any] = {
        "scenario": SCENARIOS[0],
        "started": 1.0,
        "ended": 2.0,
        "transcript": "",
        "status": 0,
        "dns": [],
        "logs": {"b": [LogRecord.parse(GATEWAY_RECORD)]},
        "postfix": {},
        "bob": [],
        "alice": [],
    }
    values.update(changes)
    return Observation(**values)


@pytest.mark.parametrize(
    ("changes", "result", "detail"),
    [
        ({"bob": [DELIVERED]}, Result.DELIVERED, "in Bob's mailbox"),
        (
            {"alice": [b"Subject: Undelivered\r\n\r\n"]},
            Result.BOUNCED,
            "a bounce in Alice's mailbox",
        ),
        ({"transcript": "<** 550 5.7.1 No\n", "status": 24}, Result.REFUSED, "550 5.7.1 No"),
        ({}, Result.LOST, "neither delivered, refused nor bounced in time"),
    ],
)
def test_outcome_of(changes: dict[str, Any], result: Result, detail: str) -> None:
    outcome = outcome_of(_observation(**changes))
    assert outcome.result is result
    assert outcome.detail.startswith(detail.removesuffix("…"))


def test_a_refusal_carries_the_results_the_gateway_logged() -> None:
    outcome = outcome_of(_observation(transcript="<** 550 5.7.1 No\n"))
    assert outcome.auth["dmarc"] == "fail"


@pytest.mark.parametrize(
    ("outcome", "expect", "text", "problems"),
    [
        (Outcome(Result.DELIVERED, "x", {"spf": "pass"}), Expectation(Result.DELIVERED), "", []),
        (
            Outcome(Result.REFUSED, "451 4.7.1 later", {}),
            Expectation(Result.REFUSED, reply="550 5.7.1"),
            "",
            ["reply '451 4.7.1 later', expected 550 5.7.1 ..."],
        ),
        (
            Outcome(Result.LOST, "nothing", {}),
            Expectation(Result.DELIVERED, auth={"dkim": "pass"}, mentions=("[lab]",)),
            "",
            ["lost (nothing), expected delivered", "dkim=None, expected pass", "'[lab]' not found"],
        ),
    ],
)
def test_matches_lists_every_difference(
    outcome: Outcome, expect: Expectation, text: str, problems: list[str]
) -> None:
    assert outcome.matches(expect, text) == problems


def test_judge_reads_the_messages_for_what_must_be_mentioned() -> None:
    scenario = next(s for s in SCENARIOS if s.key == "forward")
    message = DELIVERED.replace(
        b"Return-Path: <alice@a.example>",
        b"Return-Path: <SRS0=x=y=a.example=alice@srs.fwd.d.example>",
    ).replace(b"header.from=a.example", b"header.from=a.example; arc=pass")
    outcome, problems = judge(_observation(scenario=scenario, bob=[message]))
    assert outcome.result is Result.DELIVERED
    assert problems == []


def test_every_scenario_is_named_once_and_runs_swaks_from_a_lab_host() -> None:
    keys = [s.key for s in SCENARIOS]
    assert keys == ["legit", "spoof", "listed", "list", "forward", "bounce"]
    assert {s.client for s in SCENARIOS} == {"alice", "zombie"}
    for scenario in SCENARIOS:
        assert "--server" in scenario.swaks
        assert scenario.expect.result in Result
