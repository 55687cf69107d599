"""How the lab tells a journey: SMTP dialogues cut to the lines that matter (credentials and
message content never shown), DNS queries sorted into the steps, the final header condensed."""

from __future__ import annotations

import pytest
from lab.dnstap import Exchange
from lab.postfix import chat_lines
from lab.report import _header_lines, _split_mta, classify, summary, swaks_dialogue
from lab.report import postfix_dialogue as chat_dialogue
from lab.scenarios import SCENARIOS, Outcome, Result
from tests.lab.test_scenarios import DELIVERED, TRANSCRIPT

SUBMISSION = """\
<-  220 mail.a.example ESMTP mailwarden
 -> EHLO laptop
<-  250-mail.a.example
<-  250-PIPELINING
<-  250 STARTTLS
 -> STARTTLS
<-  220 2.0.0 Ready to start TLS
=== TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256
 ~> EHLO laptop
<~  250-mail.a.example
<~  250 AUTH PLAIN LOGIN
 ~> AUTH PLAIN AGFsaWNlQGEuZXhhbXBsZQBjb3JyZWN0IGhvcnNl
<~  235 2.7.0 Authentication successful
 ~> MAIL FROM:<alice@a.example>
<~  250 2.1.0 Ok
 ~> DATA
<~  354 End data with <CR><LF>.<CR><LF>
 ~> Date: Tue, 01 Dec 2026 22:55:35 +0000
 ~> From: Alice <alice@a.example>
 ~> Subject: Lunch
 ~> X-Secret: never shown
 ~>
 ~> QUIT
 ~> the body says QUIT, and DATA, and AUTH PLAIN xyz
 ~> .
<~  250 2.0.0 Ok: queued as 8510F3C5199101
 ~> QUIT
<~  221 2.0.0 Bye
"""


def test_a_submission_is_told_without_credentials_or_content() -> None:
    assert swaks_dialogue(SUBMISSION) == [
        "S: 220 mail.a.example ESMTP mailwarden",
        "C: EHLO laptop",
        "S: 250 mail.a.example (PIPELINING, STARTTLS)",
        "C: STARTTLS",
        "S: 220 2.0.0 Ready to start TLS",
        "   (TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256)",
        "C: EHLO laptop",
        "S: 250 mail.a.example (AUTH PLAIN LOGIN)",
        "C: AUTH PLAIN (credentials hidden)",
        "S: 235 2.7.0 Authentication successful",
        "C: MAIL FROM:<alice@a.example>",
        "S: 250 2.1.0 Ok",
        "C: DATA",
        "S: 354 End data with <CR><LF>.<CR><LF>",
        "C:    From: Alice <alice@a.example>",
        "C:    Subject: Lunch",
        "C: . (end of the message)",
        "S: 250 2.0.0 Ok: queued as 8510F3C5199101",
    ]
    assert "AGFsaWNl" not in "\n".join(swaks_dialogue(SUBMISSION))


def test_a_refusal_and_swaks_errors_are_shown() -> None:
    told = swaks_dialogue(TRANSCRIPT)
    assert "S: 554 5.7.1 Service unavailable; client blocked (RBL_LAB_LISTED)" in told
    assert told[-1] == "!  Remote host closed connection unexpectedly."


def test_postfix_pipelined_dialogue_keeps_its_order() -> None:
    log = "\n".join(
        f"Dec 1 00:00:00 h postfix/smtp[1]: {d} mx.b.example[10.99.2.25]:25: {text}"
        for d, text in [
            ("<", "220 mx.b.example ESMTP"),
            (">", "EHLO mail.a.example"),
            ("<", "250-mx.b.example"),
            ("<", "250 CHUNKING"),
            (">", "MAIL FROM:<a@a.example> SIZE=10"),
            (">", "RCPT TO:<b@b.example>"),
            (">", "DATA"),
            ("<", "250 2.1.0 Ok"),
            ("<", "550 5.1.1 unknown"),
            ("<", "554 5.5.1 Error: no valid recipients"),
            (">", "RSET"),
        ]
    )
    assert chat_dialogue(chat_lines(log)) == [
        "S: 220 mx.b.example ESMTP",
        "C: EHLO mail.a.example",
        "S: 250 mx.b.example (CHUNKING)",
        "C: MAIL FROM:<a@a.example> SIZE=10",
        "C: RCPT TO:<b@b.example>",
        "C: DATA",
        "S: 250 2.1.0 Ok",
        "S: 550 5.1.1 unknown",
        "S: 554 5.5.1 Error: no valid recipients",
        "C: RSET",
    ]


def ex(name: str, rdtype: str, *answers: str, rcode: str = "NOERROR") -> Exchange:
    return Exchange(1.0, "10.99.2.25", name, rdtype, rcode, answers)


@pytest.mark.parametrize(
    ("exchange", "step", "note"),
    [
        (ex("25.1.99.10.bl.example", "A", rcode="NXDOMAIN"), 4, ""),
        (ex("25.1.99.10.bl.example", "TXT"), 4, ""),
        (ex("25.1.99.10.in-addr.arpa", "PTR", "mail.a.example."), 5, ""),
        (ex("mail.a.example", "A", "10.99.1.25"), 6, "PTR's name = HELO name"),
        (ex("mail.a.example", "AAAA"), 6, "PTR's name = HELO name"),
        (ex("mail.a.example", "TXT", '"v=spf1 -all"'), 7, "HELO identity"),
        (ex("a.example", "TXT", '"v=spf1 -all"'), 7, "MAIL FROM identity"),
        (ex("spf.a.example", "A"), 7, ""),
        (ex("a.example", "MX"), 9, "does the From domain exist?"),
        (ex("a.example", "A"), 9, "does the From domain exist?"),
        (ex("lab-rsa._domainkey.a.example", "TXT"), 8, ""),
        (ex("arc._domainkey.lists.c.example", "TXT"), 8, ""),
        (ex("_dmarc.a.example", "TXT"), 9, ""),
        (ex("_dmarc.example", "TXT", rcode="NXDOMAIN"), 9, ""),
        (ex("a.example", "SOA"), 0, ""),
    ],
)
def test_queries_are_sorted_into_steps(exchange: Exchange, step: int, note: str) -> None:
    ptr = ex("25.1.99.10.in-addr.arpa", "PTR", "mail.a.example.")
    steps = classify([ptr, exchange], helo="mail.a.example", author="a.example")
    assert (exchange, note) in steps[step]


def test_the_helo_name_alone_is_step_six_too() -> None:
    steps = classify([ex("laptop.example", "A")], helo="laptop.example", author="a.example")
    assert steps == {6: [(ex("laptop.example", "A"), "HELO name")]}


def test_an_mta_lookup_is_routing_only_after_its_mx_query() -> None:
    early = ex("mail.a.example", "A", "10.99.1.25")  # a check, before any MX query
    mx = ex("a.example", "MX", "10 mail.a.example.")
    late = ex("mail.a.example", "A", "10.99.1.25")
    txt = ex("a.example", "TXT")
    checks, routing = _split_mta([early, mx, txt, late])
    assert checks == [early, txt]
    assert routing == [mx, late]


def test_the_final_header_is_condensed() -> None:
    message = (
        b"Received: from mail.a.example (mail.a.example [10.99.1.25])\r\n"
        b"\t(using TLSv1.3 with cipher X)\r\n\tby mx.b.example (mailwarden) with ESMTPS id 1\r\n"
        b"\tfor <bob@b.example>; Tue, 01 Dec 2026 22:56:35 +0000\r\n"
        b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=lists.c.example; s=arc; t=1;\r\n"
        b" b=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
        b"ARC-Authentication-Results: i=1; mx.lists.c.example; spf=pass\r\n"
        b" smtp.mailfrom=a.example; dkim=pass header.d=a.example\r\n"
        b"X-Not-Shown: x\r\n" + DELIVERED
    )
    lines = _header_lines(message)
    assert lines[:4] == [
        "Received: from mail.a.example [10.99.1.25] by mx.b.example (mailwarden) with ESMTPS",
        "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=lists.c.example; s=arc",
        "ARC-Authentication-Results: i=1; mx.lists.c.example: spf=pass dkim=pass",
        "Return-Path: <alice@a.example>",
    ]
    assert lines[4] == "Authentication-Results: mx.b.example;"  # the receiver's in full
    assert lines[5].strip() == "iprev=pass policy.iprev=10.99.1.25"
    assert "Authentication-Results: mx.lists.c.example: arc=fail spf=softfail" in lines
    assert not any("X-Not-Shown" in line or "AAAAAAAAAAAA" in line for line in lines)


def test_the_summary_is_a_table_with_one_line_per_scenario() -> None:
    rows = [
        (SCENARIOS[0], Outcome(Result.DELIVERED, "in Bob's mailbox", {"spf": "pass"}), []),
        (SCENARIOS[1], Outcome(Result.REFUSED, "550 5.7.1 Rejected by policy", {}), ["x"]),
    ]
    assert summary(rows) == [
        "scenario  outcome                             results at Bob's MX  as expected",
        "────────  ──────────────────────────────────  ───────────────────  ───────────",
        "legit     delivered                           spf=pass             yes",
        "spoof     refused 550 5.7.1 Rejected by pol…  -                    NO",
    ]
