"""The lab's Postfix configuration (checked by Postfix's own postconf) and the log lines the lab
reads back: the SMTP client's dialogue and each delivery's status."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from lab.postfix import ChatLine, Delivery, chat_lines, deliveries, write_postfix
from tests.gateway.helpers import require_program

LOG = """\
Dec 01 22:56:35 mail postfix/smtp[21714]: > mx.b.example[10.99.2.25]:25: EHLO mail.a.example
Dec 01 22:56:35 mail postfix/smtp[21714]: < mx.b.example[10.99.2.25]:25: 250-mx.b.example
Dec 01 22:56:35 mail postfix/smtp[21714]: server features: 0x20100f size 26214400
Dec 01 22:56:35 mail postfix/smtp[21714]: smtp_stream_setup: maxtime=300 enable_deadline=0
Dec 01 22:56:35 mail postfix/smtpd[2]: > unknown[127.0.0.1]: 250 not the client's dialogue
Dec 01 22:56:35 mail postfix/smtp[21714]: > mx.b.example[10.99.2.25]:25: MAIL FROM:<a@a.example>
Dec 01 22:56:35 mail postfix/smtp[21714]: 7C67920D713: to=<bob@b.example>, \
relay=mx.b.example[10.99.2.25]:25, delay=0.76, delays=0.04/0.13/0.51/0.08, dsn=2.0.0, \
status=sent (250 2.0.0 Ok: queued as 0F186F76E94701)
Dec 01 23:02:32 fwd postfix/smtp[9]: 2B9E0224052: to=<robert@b.example>, \
orig_to=<robert@fwd.d.example>, relay=mx.b.example[10.99.2.25]:25, delay=0.1, dsn=5.1.1, \
status=bounced (host mx.b.example[10.99.2.25] said: 550 5.1.1 unknown (in reply to RCPT TO))
Dec 01 23:02:33 fwd postfix/smtp[9]: 3C: to=<x@y.example>, relay=none, delay=30, dsn=4.4.1, \
status=deferred (connect to y.example[192.0.2.1]:25: Connection timed out)
"""


def test_the_client_dialogue_is_read_and_nothing_else() -> None:
    assert chat_lines(LOG) == [
        ChatLine("mx.b.example[10.99.2.25]:25", True, "EHLO mail.a.example"),
        ChatLine("mx.b.example[10.99.2.25]:25", False, "250-mx.b.example"),
        ChatLine("mx.b.example[10.99.2.25]:25", True, "MAIL FROM:<a@a.example>"),
    ]


def test_each_delivery_status_is_read() -> None:
    assert deliveries(LOG) == [
        Delivery(
            "7C67920D713",
            "bob@b.example",
            "mx.b.example[10.99.2.25]:25",
            "sent",
            "250 2.0.0 Ok: queued as 0F186F76E94701",
        ),
        Delivery(
            "2B9E0224052",
            "robert@b.example",
            "mx.b.example[10.99.2.25]:25",
            "bounced",
            "host mx.b.example[10.99.2.25] said: 550 5.1.1 unknown (in reply to RCPT TO)",
        ),
        Delivery(
            "3C",
            "x@y.example",
            "none",
            "deferred",
            "connect to y.example[192.0.2.1]:25: Connection timed out",
        ),
    ]


def test_postconf_accepts_every_configuration_the_lab_writes() -> None:
    postconf = require_program("postconf")
    root = Path(tempfile.mkdtemp(prefix="lab-postfix-"))
    try:
        for name, mailboxes, extra in (
            ("mta", {"a.example": ["alice", "postmaster"]}, ""),
            ("relay", {}, "virtual_alias_maps = inline:{ a@x.example=b@y.example }\n"),
        ):
            etc = write_postfix(
                root / name,
                hostname="mail.a.example",
                listeners=[("127.0.0.1", 10025)],
                mailboxes=mailboxes,
                interfaces=["127.0.0.1"],
                extra=extra,
            )
            result = subprocess.run(
                [postconf, "-c", str(etc), "-n"], capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stderr
            assert "warning" not in result.stderr, result.stderr
            settings = dict(
                line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line
            )
            assert settings["smtp_host_lookup"] == "dns"
            assert settings["debug_peer_list"] == "10.99.0.0/16"
            assert (etc / "master.cf").read_text().startswith("127.0.0.1:10025 inet")
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
